"""The landing-zone sensor: webhook files become refresh runs of the records they name.

Each batch of new files is one run: the raw streams the events name fetch those records
as they are now (never the event's copy), then everything downstream is rebuilt, so the
reconciliation and the correction plan follow within minutes of a change.

The same run re-verifies the pushes that ended since the sensor last looked: the streams a
push wrote are read again by their change cursors, so a correction is confirmed even when
its webhooks never arrive, and the push's webhooks and its re-verification are one run,
not two queued on the one DuckDB writer.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from revops_pipelines.defs.corrections import PLAN_TAG, PUSH_KEY, WROTE_STREAMS
from revops_pipelines.defs.executor import EXECUTOR
from revops_pipelines.defs.resources import SETTINGS, RevopsSettings
from revops_pipelines.defs.schedules import EVERYTHING_BUT_PUSH, PLAN_KEY
from revops_pipelines.landing_zone.files import EventFile
from revops_pipelines.landing_zone.notices import pending_events, read_notice
from revops_pipelines.raw.refresh import streams_named
from revops_pipelines.settings import Settings

MAX_BATCH_FILES = 500
# Push events read at one look; the cursor moves past them, so more wait for the next look.
MAX_PUSHES = 100
BATCH_TAG = "revops/landing_batch"
# The plans a refresh run re-verifies (comma-separated), and the cursor's key for pushes seen.
REVERIFY_TAG = "revops/reverify_plans"
PUSH_CURSOR = "push_storage_id"
# The daemon evaluates sensors every few seconds, on top of their own intervals.
DAEMON_LOOP_S = 10
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


@dataclass(frozen=True)
class Pushes:
    """Pushes that ended since the sensor last looked: their plans and the raw streams they
    wrote, and the newest push event's storage id (the cursor after them)."""

    plan_ids: list[str]
    streams: list[str]
    after: int


def pushes_since(instance: dg.DagsterInstance, after: int) -> Pushes:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=PUSH_KEY, after_storage_id=after),
        limit=MAX_PUSHES,
        ascending=True,
    ).records
    plan_ids: list[str] = []
    streams: set[str] = set()
    for record in records:
        metadata = record.asset_materialization.metadata if record.asset_materialization else {}
        if "plan_id" in metadata and str(metadata["plan_id"].value) not in plan_ids:
            plan_ids.append(str(metadata["plan_id"].value))
        if WROTE_STREAMS in metadata:
            streams |= set(metadata[WROTE_STREAMS].value or [])
    return Pushes(plan_ids, sorted(streams), records[-1].storage_id if records else after)


NO_PUSHES = Pushes([], [], 0)


def push_coming(instance: dg.DagsterInstance, *, within_s: float) -> bool:
    """The newest plan, made less than `within_s` ago, has corrections to send and no push
    run yet: the push sensor is about to launch one."""
    records = instance.fetch_materializations(PLAN_KEY, limit=1).records
    if not records or time.time() - records[0].timestamp > within_s:
        return False
    metadata = records[0].asset_materialization.metadata if records[0].asset_materialization else {}
    if "plan_id" not in metadata or not (metadata.get("pending") and metadata["pending"].value):
        return False
    plan_id = str(metadata["plan_id"].value)
    return not instance.get_runs(
        dg.RunsFilter(job_name=PUSH_JOB, tags={PLAN_TAG: plan_id}), limit=1
    )


def _run_request(
    batch: Sequence[EventFile], pushes: Pushes, *, graph: dg.AssetGraph | None
) -> dg.RunRequest | dg.SkipReason:
    notices = [n for event in batch if (n := read_notice(event.path, event.source)) is not None]
    by_stream = streams_named(notices)
    # A stream a push wrote is read by its change cursor, which takes in what events name too.
    notified = {key: found for key, found in by_stream.items() if key not in pushes.streams}
    streams = sorted(set(by_stream) | set(pushes.streams))
    if not streams:
        return dg.SkipReason(
            f"{len(batch)} landed events and {len(pushes.plan_ids)} pushes name no record "
            "a stream reads"
        )
    raw_keys = [dg.AssetKey(["raw", key]) for key in streams]
    selection = dg.AssetSelection.assets(*raw_keys).downstream() & EVERYTHING_BUT_PUSH
    keys = sorted(selection.resolve(graph)) if graph is not None else raw_keys
    # Named, or a run of these assets would take every check on them, the push's gate too.
    checks = sorted(selection.resolve_checks(graph)) if graph is not None else None
    notified_files = {
        key: sorted({n.path for n in found}) for key, found in sorted(notified.items())
    }
    run_config = {"ops": {"extract": {"config": {"notified_files": notified_files}}}}
    names = [event.key for event in batch]
    if pushes.plan_ids:
        names.append(f"pushes through {pushes.after}")
    tags = {}
    if batch:
        tags[BATCH_TAG] = f"{batch[0].key} (+{len(batch) - 1})"
    if pushes.plan_ids:
        tags[REVERIFY_TAG] = ",".join(pushes.plan_ids)
    return dg.RunRequest(
        run_key=hashlib.sha256("\n".join(names).encode()).hexdigest()[:32],
        run_config=run_config,
        asset_selection=keys,
        asset_check_keys=checks,
        tags=tags,
    )


def build_landing_sensor(
    *,
    minimum_interval_seconds: int = Settings.landing_sensor_interval_s,
    max_batch_files: int = MAX_BATCH_FILES,
    push_wait_s: float = Settings.push_sensor_interval_s + DAEMON_LOOP_S,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """`landing_zone_sensor` over the settings' landing directory: one run request per batch
    of new files; the first also re-reads what the pushes since the last look wrote. Files
    wait while a push runs, or for up to `push_wait_s` after a plan for its push to start."""

    @dg.sensor(
        name="landing_zone_sensor",
        job=landing_refresh_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Webhook files landed since the cursor, in batches, and the streams the "
        "pushes since then wrote, as refresh runs.",
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
        # A refresh queued beside the push it just missed would run after that push and be
        # followed by the push's re-verification: one run later, the same events are read.
        if push_coming(context.instance, within_s=push_wait_s):
            return dg.SensorResult(
                skip_reason=dg.SkipReason("a new plan waits for its push; events are read after it")
            )
        cursor = json.loads(context.cursor) if context.cursor else {}
        pushes = pushes_since(context.instance, int(cursor.get(PUSH_CURSOR) or 0))
        new, next_cursor = pending_events(settings.get().landing_dir, cursor or None)
        next_cursor[PUSH_CURSOR] = pushes.after
        if not new and not pushes.plan_ids:
            return dg.SensorResult(
                skip_reason=dg.SkipReason("no new landed event or push"),
                cursor=json.dumps(next_cursor, sort_keys=True),
            )
        graph = context.repository_def.asset_graph if context.repository_def else None
        batches = [
            new[start : start + max_batch_files] for start in range(0, len(new), max_batch_files)
        ]
        results = [
            _run_request(batch, pushes if number == 0 else NO_PUSHES, graph=graph)
            for number, batch in enumerate(batches or [[]])
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
    minimum_interval_seconds=SETTINGS.landing_sensor_interval_s,
    push_wait_s=SETTINGS.push_sensor_interval_s + DAEMON_LOOP_S,
)
