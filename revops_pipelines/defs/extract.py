"""Extract assets: one per source stream, `raw/<system>_<stream>`, incremental by its cursor."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from revops_pipelines.connectors.base import StreamSpec
from revops_pipelines.landing_zone.notices import read_notice
from revops_pipelines.raw import store
from revops_pipelines.raw.extract import (
    STREAM_TABLES,
    ExtractError,
    StreamStats,
    extract_streams,
    stream_key,
)
from revops_pipelines.raw.refresh import notified_for

FULL_REFRESH_TAG = "revops/full_refresh"
QUARANTINE_CHECK = "quarantine_empty"
# The product each system stands for, as the Dagster UI names (and draws) it.
SYSTEM_KINDS = {"crm": "salesforce", "billing": "stripe", "erp": "netsuite"}


class ExtractConfig(dg.Config):
    full_refresh: bool = False
    # Stream key → landed webhook files naming records of that stream: only those are
    # fetched, as they are now, and the stream's cursor stays (set by the landing sensor).
    notified_files: dict[str, list[str]] = {}


def _metadata(stats: StreamStats) -> dict[str, Any]:
    return {
        "dagster/row_count": stats.row_count,
        "fetched": stats.fetched,
        "rows_new": stats.new,
        "rows_changed": stats.changed,
        "rows_deleted": stats.deleted,
        "quarantined": stats.quarantined,
        "requests": stats.requests,
        "retries": stats.retries,
        "throttled": stats.throttled,
        "elapsed_s": stats.elapsed_s,
        "full_refresh": stats.full_refresh,
        "unknown_fields": ", ".join(stats.unknown_fields) or "none",
        "cursor": dg.MetadataValue.json(stats.cursor or {}),
    }


def _quarantine_check(con: Any, key: str, asset_key: dg.AssetKey) -> dg.AssetCheckResult:
    count = store.quarantine_count(con, key)
    sample = con.execute(
        "SELECT coalesce(record_id, '?'), reason, coalesce(value, payload) FROM raw._quarantine "
        "WHERE stream = ? ORDER BY extracted_at DESC LIMIT 5",
        [key],
    ).fetchall()
    lines = [f"- `{record_id}` {reason}: `{value[:200]}`" for record_id, reason, value in sample]
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=QUARANTINE_CHECK,
        passed=count == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined": count, "sample": dg.MetadataValue.md("\n".join(lines) or "none")},
    )


def _spec(system: str, spec: StreamSpec) -> dg.AssetSpec:
    cursor_text = f"by `{spec.cursor}`" if spec.cursor else "in full (no change column)"
    return dg.AssetSpec(
        _asset_key(system, spec),
        group_name="raw",
        kinds={"duckdb", "table", SYSTEM_KINDS[system]},
        metadata={"dagster/table_name": f"raw.{stream_key(system, spec.name)}"},
        description=(
            f"{system} {spec.source} records as received, one row per `{spec.primary_key}`; "
            f"read incrementally {cursor_text}."
        ),
    )


def _asset_key(system: str, spec: StreamSpec) -> dg.AssetKey:
    return dg.AssetKey(["raw", stream_key(system, spec.name)])


STREAMS = [
    (system, spec) for system, (specs, _) in STREAM_TABLES.items() for spec in specs.values()
]


# One step reads every selected stream at the same time (threads in one process), so the
# systems overlap while each stays within its own allowance; DuckDB sees one writer at a
# time. The checks run in the same step, on the rows it has just written.
@dg.multi_asset(
    name="extract",
    specs=[_spec(system, spec) for system, spec in STREAMS],
    check_specs=[
        dg.AssetCheckSpec(
            QUARANTINE_CHECK,
            asset=_asset_key(system, spec),
            description="Records that broke the contract were set aside in raw._quarantine.",
        )
        for system, spec in STREAMS
    ],
    can_subset=True,
    pool="duckdb",
    required_resource_keys={"settings", "duckdb"},
)
def extract(
    context: dg.AssetExecutionContext, config: ExtractConfig
) -> Iterator[dg.MaterializeResult]:
    """Every selected `raw/<system>_<stream>` asset, each stream incremental by its cursor."""
    full = config.full_refresh or context.run.tags.get(FULL_REFRESH_TAG) == "true"
    selected = [
        (system, spec)
        for system, spec in STREAMS
        if _asset_key(system, spec) in context.selected_asset_keys
    ]
    checks = set(context.selected_asset_check_keys)
    notified = {}
    for key, paths in config.notified_files.items():
        system = key.split("_", 1)[0]
        notices = [read_notice(path, system) for path in paths]
        notified[key] = notified_for(system, [n for n in notices if n is not None])
    failed: dict[str, Exception] = {}
    with context.resources.duckdb.connect() as con:
        for key, outcome in extract_streams(
            context.resources.settings.client,
            con,
            [(system, spec.name) for system, spec in selected],
            run_id=context.run.run_id,
            full_refresh=full,
            notified=notified,
        ):
            if isinstance(outcome, Exception):
                context.log.error(f"raw/{key} failed: {outcome}")
                failed[key] = outcome
                continue
            asset_key = dg.AssetKey(["raw", key])
            check_key = dg.AssetCheckKey(asset_key, QUARANTINE_CHECK)
            yield dg.MaterializeResult(
                asset_key=asset_key,
                metadata=_metadata(outcome),
                check_results=[_quarantine_check(con, key, asset_key)]
                if check_key in checks
                else [],
            )
    if failed:
        raise ExtractError(failed)
