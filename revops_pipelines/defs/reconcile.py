"""Reconciliation assets: exception history and exports, run metrics, the HTML report.

The findings themselves are the SQL models under `revops_pipelines/sql/reconciliation/` (assets
`reconciliation/<name>`, built by `models.py`); these assets carry them into the history.
"""

from datetime import UTC, datetime

import dagster as dg

from revops_pipelines.ledger import exception_statuses
from revops_pipelines.recon.catalog import relation_exists
from revops_pipelines.recon.exceptions import export_exceptions, update_exceptions
from revops_pipelines.recon.metrics import record_metrics
from revops_pipelines.recon.report import render_report, report_metadata
from revops_pipelines.recon.run import reconciliation_model_names
from revops_pipelines.settings import Settings

GROUP = "reconciliation"
EXCEPTIONS_KEY = dg.AssetKey(["recon", "drift_exceptions"])
METRICS_KEY = dg.AssetKey(["recon", "metrics"])
REPORT_KEY = dg.AssetKey(["recon", "report"])


class ReconcileConfig(dg.Config):
    """`detected_at` (ISO 8601) fixes the detection time of this run, e.g. to replay a day."""

    detected_at: str = ""


def _detected_at(config: ReconcileConfig) -> datetime:
    # Detection happens in wall-clock time, so exceptions age between runs even when the data
    # describes a fixed `as_of` day (grace periods use that day, inside the SQL models).
    if config.detected_at:
        return datetime.fromisoformat(config.detected_at).astimezone(UTC)
    return datetime.now(UTC)


def _metadata(meta: dict) -> dict[str, dg.MetadataValue]:
    return {
        "open_exceptions": dg.MetadataValue.int(meta["open_exceptions"]),
        "by_type": dg.MetadataValue.json(meta["by_type"]),
        "money_at_stake_minor": dg.MetadataValue.json(meta["money_at_stake_minor"]),
        "top_10": dg.MetadataValue.md(meta["top_markdown"]),
    }


def _decisions(con) -> dict[str, str]:
    """People's decisions from the ledger, for the findings the history already holds."""
    decided = exception_statuses(Settings.from_env().ledger_url)
    if not decided or not relation_exists(con, "recon", "exception_history"):
        return {}
    known = {
        row[0]
        for row in con.execute(
            "SELECT exception_id FROM recon.exception_history WHERE exception_id IN "
            "(SELECT unnest(?::VARCHAR[]))",
            [list(decided)],
        ).fetchall()
    }
    return {key: status for key, status in decided.items() if key in known}


@dg.asset(
    key=EXCEPTIONS_KEY,
    deps=[dg.AssetKey([GROUP, name]) for name in reconciliation_model_names()],
    group_name=GROUP,
    pool="duckdb",
    required_resource_keys={"duckdb"},
)
def drift_exceptions(
    context: dg.AssetExecutionContext, config: ReconcileConfig
) -> dg.MaterializeResult:
    """Every drift finding with its age and status: the list finance works from."""
    settings = Settings.from_env()
    with context.resources.duckdb.connect() as con:
        summary = update_exceptions(con, now=_detected_at(config), statuses=_decisions(con))
        parquet, csv = export_exceptions(con, settings.output_dir)
        meta = report_metadata(con)
        total = con.execute("SELECT count(*) FROM recon.drift_exceptions").fetchall()[0][0]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(int(total)),
            "new": dg.MetadataValue.int(summary.new),
            "resolved": dg.MetadataValue.int(summary.resolved),
            "review": dg.MetadataValue.int(summary.review_total),
            "parquet": dg.MetadataValue.path(str(parquet)),
            "csv": dg.MetadataValue.path(str(csv)),
            **_metadata(meta),
        }
    )


@dg.asset(
    key=METRICS_KEY,
    deps=[EXCEPTIONS_KEY],
    group_name=GROUP,
    pool="duckdb",
    required_resource_keys={"duckdb"},
)
def recon_metrics(
    context: dg.AssetExecutionContext, config: ReconcileConfig
) -> dg.MaterializeResult:
    """Quote-to-cash delay, exception aging, review load, invoice accuracy, money at stake."""
    with context.resources.duckdb.connect() as con:
        metrics = record_metrics(con, now=_detected_at(config))
    return dg.MaterializeResult(
        metadata={
            f"{m.metric}/{m.dimension}": dg.MetadataValue.float(float(m.value)) for m in metrics
        }
    )


@dg.asset(
    key=REPORT_KEY,
    deps=[METRICS_KEY],
    group_name=GROUP,
    pool="duckdb",
    required_resource_keys={"duckdb"},
)
def recon_report(
    context: dg.AssetExecutionContext, config: ReconcileConfig
) -> dg.MaterializeResult:
    """The reconciliation report people open: charts and the exception list in one HTML file."""
    settings = Settings.from_env()
    with context.resources.duckdb.connect() as con:
        path = render_report(con, settings.output_dir / "report.html", now=_detected_at(config))
        meta = report_metadata(con)
    return dg.MaterializeResult(
        metadata={"path": dg.MetadataValue.path(str(path)), **_metadata(meta)}
    )
