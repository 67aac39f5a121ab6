"""Jobs and their schedules: hourly incremental reconciliation, nightly full run."""

from datetime import timedelta

import dagster as dg

from revops_pipelines.defs.executor import EXECUTOR

# Assets that write to the source systems (the push of corrections) run only in their own
# job (defs/corrections.py), launched per plan by a sensor; they carry this tag.
WRITES_TO_SOURCES = "revops/writes_to_sources"
PLAN_KEY = dg.AssetKey(["corrections", "correction_plan"])
# The plan's blast-radius cap gates the push, so it is checked in the push's job: failing, it
# stops the push, not the reconciliation run that made the plan.
PUSH_GATE = dg.AssetCheckKey(PLAN_KEY, "blast_radius")
EVERYTHING_BUT_PUSH = (
    dg.AssetSelection.all()
    - dg.AssetSelection.tag(WRITES_TO_SOURCES, "true")
    - dg.AssetSelection.checks(PUSH_GATE)
)

reconcile_job = dg.define_asset_job(
    "reconcile_job",
    selection=EVERYTHING_BUT_PUSH,
    description="Incremental extract of the three systems, models, reconciliation and report.",
    executor_def=EXECUTOR,
)

full_refresh_job = dg.define_asset_job(
    "full_refresh_job",
    selection=EVERYTHING_BUT_PUSH,
    description="Every stream re-read from the start, then models, reconciliation and report.",
    tags={"revops/full_refresh": "true"},
    executor_def=EXECUTOR,
)

# How stale the exceptions may be: one missed hourly run is a warning, a day without a
# reconciliation (the nightly full run missed too) a failure.
RECONCILIATION_FRESHNESS = dg.FreshnessPolicy.time_window(
    warn_window=timedelta(hours=2), fail_window=timedelta(hours=26)
)

hourly_reconciliation = dg.ScheduleDefinition(
    name="hourly_reconciliation",
    job=reconcile_job,
    cron_schedule="0 * * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

nightly_reconciliation = dg.ScheduleDefinition(
    name="nightly_reconciliation",
    job=full_refresh_job,
    cron_schedule="30 2 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
