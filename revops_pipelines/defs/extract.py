"""Extract assets: one per source stream, `raw/<system>_<stream>`, incremental by its cursor."""

from typing import Any

import dagster as dg

from revops_pipelines.connectors.base import StreamSpec
from revops_pipelines.landing_zone.notices import read_notice
from revops_pipelines.raw import store
from revops_pipelines.raw.extract import STREAM_TABLES, StreamStats, extract_stream, stream_key
from revops_pipelines.raw.refresh import notified_for

FULL_REFRESH_TAG = "revops/full_refresh"
QUARANTINE_CHECK = "quarantine_empty"
# The product each system stands for, as the Dagster UI names (and draws) it.
SYSTEM_KINDS = {"crm": "salesforce", "billing": "stripe", "erp": "netsuite"}


class ExtractConfig(dg.Config):
    full_refresh: bool = False
    # Landed webhook files naming records of this stream: only those are fetched, as they are
    # now, and the stream's cursor stays (set by the landing-zone sensor).
    notified_files: list[str] = []


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


def _build(system: str, spec: StreamSpec) -> dg.AssetsDefinition:
    key = stream_key(system, spec.name)
    asset_key = dg.AssetKey(["raw", key])
    cursor_text = f"by `{spec.cursor}`" if spec.cursor else "in full (no change column)"

    # The check runs in the asset's own step, so it shares the single-writer pool.
    @dg.asset(
        key=asset_key,
        group_name="raw",
        pool="duckdb",
        kinds={"duckdb", "table", SYSTEM_KINDS[system]},
        required_resource_keys={system, "duckdb"},
        check_specs=[
            dg.AssetCheckSpec(
                QUARANTINE_CHECK,
                asset=asset_key,
                description="Records that broke the contract were set aside in raw._quarantine.",
            )
        ],
        description=(
            f"{system} {spec.source} records as received, one row per `{spec.primary_key}`; "
            f"read incrementally {cursor_text}."
        ),
    )
    def _extract(context: dg.AssetExecutionContext, config: ExtractConfig) -> dg.MaterializeResult:
        full = config.full_refresh or context.run.tags.get(FULL_REFRESH_TAG) == "true"
        notified = None
        if config.notified_files:
            notices = [read_notice(path, system) for path in config.notified_files]
            notified = notified_for(system, [n for n in notices if n is not None])
        client = getattr(context.resources, system).client()
        try:
            with context.resources.duckdb.connect() as con:
                stats = extract_stream(
                    client,
                    con,
                    spec.name,
                    run_id=context.run.run_id,
                    full_refresh=full,
                    notified=notified,
                )
                check = _quarantine_check(con, key, asset_key)
        finally:
            client.close()
        return dg.MaterializeResult(metadata=_metadata(stats), check_results=[check])

    return _extract


extract_assets = [
    _build(system, spec) for system, (specs, _) in STREAM_TABLES.items() for spec in specs.values()
]
