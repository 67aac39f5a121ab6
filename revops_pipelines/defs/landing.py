"""The landing-zone sensor: webhook files become refresh runs of the records they name.

Each batch of new files is one run: the raw streams the events name fetch those records
as they are now (never the event's copy), then everything downstream is rebuilt, so the
reconciliation and the correction plan follow within minutes of a change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import dagster as dg

from revops_pipelines.defs.executor import EXECUTOR
from revops_pipelines.defs.resources import SETTINGS, RevopsSettings
from revops_pipelines.defs.schedules import EVERYTHING_BUT_PUSH
from revops_pipelines.landing_zone.files import EventFile
from revops_pipelines.landing_zone.notices import pending_events, read_notice
from revops_pipelines.raw.refresh import streams_named
from revops_pipelines.settings import Settings

MAX_BATCH_FILES = 500
BATCH_TAG = "revops/landing_batch"
PUSH_JOB = "push_corrections"
IN_PROGRESS = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]

landing_refresh_job = dg.define_asset_job(
    "landing_refresh_job",
    selection=EVERYTHING_BUT_PUSH,
    description="Records named by webhooks re-fetched, then models, reconciliation and report.",
    executor_def=EXECUTOR,
)


def _run_request(
    batch: Sequence[EventFile], *, graph: dg.AssetGraph | None
) -> dg.RunRequest | dg.SkipReason:
    notices = [n for event in batch if (n := read_notice(event.path, event.source)) is not None]
    by_stream = streams_named(notices)
    if not by_stream:
        return dg.SkipReason(f"{len(batch)} landed events name no record a stream reads")
    raw_keys = [dg.AssetKey(["raw", key]) for key in sorted(by_stream)]
    selection = dg.AssetSelection.assets(*raw_keys).downstream() & EVERYTHING_BUT_PUSH
    keys = sorted(selection.resolve(graph)) if graph is not None else raw_keys
    # Named, or a run of these assets would take every check on them, the push's gate too.
    checks = sorted(selection.resolve_checks(graph)) if graph is not None else None
    notified_files = {
        key: sorted({n.path for n in notices}) for key, notices in sorted(by_stream.items())
    }
    run_config = {"ops": {"extract": {"config": {"notified_files": notified_files}}}}
    names = "\n".join(event.key for event in batch)
    return dg.RunRequest(
        run_key=hashlib.sha256(names.encode()).hexdigest()[:32],
        run_config=run_config,
        asset_selection=keys,
        asset_check_keys=checks,
        tags={BATCH_TAG: f"{batch[0].key} (+{len(batch) - 1})"},
    )


def build_landing_sensor(
    *,
    minimum_interval_seconds: int = Settings.landing_sensor_interval_s,
    max_batch_files: int = MAX_BATCH_FILES,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """`landing_zone_sensor` over the settings' landing directory: one run request per batch
    of new files."""

    @dg.sensor(
        name="landing_zone_sensor",
        job=landing_refresh_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Webhook files landed since the cursor, in batches, as refresh runs.",
    )
    def landing_zone_sensor(
        context: dg.SensorEvaluationContext, settings: RevopsSettings
    ) -> dg.SensorResult:
        # A reconciliation between a customer's upsert and its invoices' would report the
        # invoices missing: while a push runs, its webhooks (and any others) wait for it.
        if context.instance.get_runs(
            dg.RunsFilter(job_name=PUSH_JOB, statuses=IN_PROGRESS), limit=1
        ):
            return dg.SensorResult(
                skip_reason=dg.SkipReason(f"{PUSH_JOB} is running; its events are read after it")
            )
        cursor = json.loads(context.cursor) if context.cursor else None
        new, next_cursor = pending_events(settings.get().landing_dir, cursor)
        graph = context.repository_def.asset_graph if context.repository_def else None
        results = [
            _run_request(new[start : start + max_batch_files], graph=graph)
            for start in range(0, len(new), max_batch_files)
        ]
        requests = [r for r in results if isinstance(r, dg.RunRequest)]
        skipped = [r for r in results if isinstance(r, dg.SkipReason)]
        return dg.SensorResult(
            run_requests=requests,
            skip_reason=skipped[0] if skipped and not requests else None,
            cursor=json.dumps(next_cursor, sort_keys=True),
        )

    return landing_zone_sensor


# How often the daemon asks is fixed when the definitions load, so it comes from the
# settings the code location was started with.
landing_zone_sensor = build_landing_sensor(
    minimum_interval_seconds=SETTINGS.landing_sensor_interval_s
)
