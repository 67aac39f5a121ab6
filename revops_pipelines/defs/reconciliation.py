"""Reconciliation assets: exception history and exports, run metrics, and the report layer.

The findings themselves are the SQL models under `revops_pipelines/sql/reconciliation/` (assets
`reconciliation/<name>`, built by `models.py`); these assets carry them into the history,
and two checks on `drift_exceptions` turn the graph red (critical) or amber (high) while
such findings are open. Every figure comes from the one reading in `reconciliation/reading.py`.
"""

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from revops_pipelines.defs.schedules import RECONCILIATION_FRESHNESS
from revops_pipelines.ledger import exception_statuses
from revops_pipelines.reconciliation.catalog import relation_exists
from revops_pipelines.reconciliation.exceptions import export_exceptions, update_exceptions
from revops_pipelines.reconciliation.metrics import Metric, record_metrics
from revops_pipelines.reconciliation.money import Rates, load_rates
from revops_pipelines.reconciliation.reading import read_exceptions
from revops_pipelines.reconciliation.report import findings_markdown, render_report, report_metadata
from revops_pipelines.reconciliation.run import now_for, reconciliation_model_names
from revops_pipelines.settings import Settings

GROUP = "reconciliation"
REPORT_GROUP = "report"
EXCEPTIONS_KEY = dg.AssetKey(["reconciliation", "drift_exceptions"])
METRICS_KEY = dg.AssetKey(["reconciliation", "metrics"])
REPORT_KEY = dg.AssetKey(["reconciliation", "report"])
SAMPLE_ROWS = 10
# (check name, severity of the findings it watches, the check's own severity)
FINDING_CHECKS = (
    ("no_critical_open", "critical", dg.AssetCheckSeverity.ERROR),
    ("no_high_open", "high", dg.AssetCheckSeverity.WARN),
)


class ReconcileConfig(dg.Config):
    """`detected_at` (ISO 8601) fixes the detection time of this run, e.g. to replay a day."""

    detected_at: str = ""


def _as_of(config: ReconcileConfig, settings: Settings) -> datetime:
    # The reconciliation's clock is the moment the data describes (the end of REVOPS_AS_OF's
    # day, else now): exceptions are first seen and age on that clock, so moving the as-of
    # date forward ages them.
    if config.detected_at:
        return datetime.fromisoformat(config.detected_at).astimezone(UTC)
    return now_for(settings.as_of or None)


def _rates(con: Any, settings: Settings, as_of: datetime) -> Rates:
    return load_rates(
        con, settings.reporting_currency, on=as_of.date(), rates_file=settings.rates_file
    )


def _decisions(con: Any, settings: Settings) -> dict[str, str]:
    """People's decisions from the ledger, for the findings the history already holds."""
    decided = exception_statuses(settings.ledger_url)
    if not decided or not relation_exists(con, "reconciliation", "exception_history"):
        return {}
    known = {
        row[0]
        for row in con.execute(
            "SELECT exception_id FROM reconciliation.exception_history WHERE exception_id IN "
            "(SELECT unnest(?::VARCHAR[]))",
            [list(decided)],
        ).fetchall()
    }
    return {key: status for key, status in decided.items() if key in known}


def _money_metadata(meta: dict[str, Any]) -> dict[str, dg.MetadataValue]:
    """Money at stake as text a person reads and as numbers a chart plots."""
    reporting = meta["reporting_currency"]
    lines = ["| currency | at stake | minor units |", "|---|---:|---:|"]
    lines += [
        f"| {c} | {meta['money_at_stake_text'][c]} | {minor} |"
        for c, minor in meta["money_at_stake_minor"].items()
    ]
    return {
        "at_stake": dg.MetadataValue.text(f"{meta['at_stake_reporting_text']} ({meta['rates']})"),
        f"at_stake_{reporting.lower()}_minor": dg.MetadataValue.int(
            int(meta["at_stake_reporting_minor"])
        ),
        "at_stake_by_currency": dg.MetadataValue.md("\n".join(lines)),
        "at_stake_by_currency_minor": dg.MetadataValue.json(meta["money_at_stake_minor"]),
    }


@dg.asset(
    key=EXCEPTIONS_KEY,
    deps=[dg.AssetKey([GROUP, name]) for name in reconciliation_model_names()],
    group_name=GROUP,
    pool="duckdb",
    kinds={"duckdb", "table", "parquet", "csv"},
    metadata={"dagster/table_name": "reconciliation.drift_exceptions"},
    freshness_policy=RECONCILIATION_FRESHNESS,
    required_resource_keys={"duckdb", "settings"},
    check_specs=[
        dg.AssetCheckSpec(
            name,
            asset=EXCEPTIONS_KEY,
            description=f"No {severity} exception is open; a sample of them when some are.",
        )
        for name, severity, _ in FINDING_CHECKS
    ],
)
def drift_exceptions(
    context: dg.AssetExecutionContext, config: ReconcileConfig
) -> dg.MaterializeResult:
    """Every disagreement between CRM, billing and ERP that finance must fix, with its money,
    age, status and suggested action: the list people work from, exported as Parquet and CSV."""
    settings = context.resources.settings.get()
    as_of = _as_of(config, settings)
    with context.resources.duckdb.connect() as con:
        summary = update_exceptions(con, now=as_of, statuses=_decisions(con, settings))
        parquet, csv = export_exceptions(con, settings.output_dir)
        rates = _rates(con, settings, as_of)
        meta = report_metadata(con, now=as_of, rates=rates, top=SAMPLE_ROWS)
        reading = read_exceptions(con, as_of=as_of, rates=rates)
        total = con.execute("SELECT count(*) FROM reconciliation.drift_exceptions").fetchall()[0][0]
    checks = []
    for name, severity, check_severity in FINDING_CHECKS:
        rows = [r for r in reading.rows if r["severity"] == severity]
        checks.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=not rows,
                severity=check_severity,
                metadata={
                    "open": dg.MetadataValue.int(len(rows)),
                    "at_stake": dg.MetadataValue.text(
                        rates.text(sum(r["reporting_minor"] or 0 for r in rows), rates.reporting)
                    ),
                    "sample": dg.MetadataValue.md(
                        findings_markdown(rows[:SAMPLE_ROWS], rates) if rows else "none open"
                    ),
                },
            )
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(int(total)),
            "as_of": dg.MetadataValue.text(as_of.strftime("%Y-%m-%d %H:%M UTC")),
            "open_exceptions": dg.MetadataValue.int(meta["open_exceptions"]),
            "new": dg.MetadataValue.int(summary.new),
            "resolved": dg.MetadataValue.int(summary.resolved),
            "review": dg.MetadataValue.int(summary.review_total),
            "by_severity": dg.MetadataValue.json(meta["by_severity"]),
            "by_type": dg.MetadataValue.json(meta["by_type"]),
            **_money_metadata(meta),
            "top_10": dg.MetadataValue.md(meta["top_markdown"]),
            "parquet": dg.MetadataValue.path(str(parquet.resolve())),
            "csv": dg.MetadataValue.path(str(csv.resolve())),
        },
        check_results=checks,
    )


def metrics_metadata(metrics: list[Metric], rates: Rates) -> dict[str, dg.MetadataValue]:
    """The run's metrics grouped by what they measure, rounded for reading."""
    groups: dict[str, dict[str, float]] = {}
    for m in metrics:
        groups.setdefault(m.metric, {})[m.dimension] = m.value
    meta: dict[str, dg.MetadataValue] = {}
    delay = groups.get("quote_to_cash_days")
    if delay:
        meta["quote_to_cash_days"] = dg.MetadataValue.json(
            {k: round(v, 1) for k, v in delay.items()}
        )
        meta["quote_to_cash_histogram"] = dg.MetadataValue.json(
            {k: int(v) for k, v in groups["quote_to_cash_histogram"].items()}
        )
    for name in ("open_exceptions_by_age", "open_exceptions_by_severity"):
        meta[name] = dg.MetadataValue.json({k: int(v) for k, v in groups.get(name, {}).items()})
    meta["open_exceptions_by_type"] = dg.MetadataValue.json(
        {k: int(v) for k, v in groups.get("open_exceptions_by_type", {}).items() if v}
    )
    meta["review_load"] = dg.MetadataValue.int(
        int(groups.get("manual_reconciliation_items", {}).get("review", 0))
    )
    accuracy = groups.get("invoice_accuracy", {}).get("share")
    if accuracy is not None:
        meta["invoice_accuracy"] = dg.MetadataValue.float(round(accuracy, 4))
        meta["invoice_accuracy_text"] = dg.MetadataValue.text(f"{accuracy * 100:.2f} %")
    money = {k: int(v) for k, v in groups.get("money_at_stake_minor", {}).items()}
    meta["money_at_stake"] = dg.MetadataValue.json({c: rates.text(v, c) for c, v in money.items()})
    meta["money_at_stake_minor"] = dg.MetadataValue.json(money)
    reporting = groups.get("money_at_stake_reporting_minor", {})
    for currency, minor in reporting.items():
        meta[f"money_at_stake_{currency.lower()}"] = dg.MetadataValue.text(
            rates.text(int(minor), currency)
        )
        meta[f"money_at_stake_{currency.lower()}_minor"] = dg.MetadataValue.int(int(minor))
    return meta


@dg.asset(
    key=METRICS_KEY,
    deps=[EXCEPTIONS_KEY],
    group_name=GROUP,
    pool="duckdb",
    kinds={"duckdb", "table"},
    metadata={"dagster/table_name": "reconciliation.metrics_history"},
    freshness_policy=RECONCILIATION_FRESHNESS,
    required_resource_keys={"duckdb", "settings"},
)
def reconciliation_metrics(
    context: dg.AssetExecutionContext, config: ReconcileConfig
) -> dg.MaterializeResult:
    """How healthy revenue operations are this run: quote-to-cash delay, open exceptions by
    age, severity and drift type, review load, invoice accuracy and money at stake, appended to
    `reconciliation.metrics_history` for the trend."""
    settings = context.resources.settings.get()
    as_of = _as_of(config, settings)
    with context.resources.duckdb.connect() as con:
        rates = _rates(con, settings, as_of)
        metrics = record_metrics(con, now=as_of, rates=rates)
    return dg.MaterializeResult(metadata=metrics_metadata(metrics, rates))


@dg.asset(
    key=REPORT_KEY,
    deps=[METRICS_KEY],
    group_name=REPORT_GROUP,
    pool="duckdb",
    kinds={"html"},
    freshness_policy=RECONCILIATION_FRESHNESS,
    required_resource_keys={"duckdb", "settings"},
)
def reconciliation_report(
    context: dg.AssetExecutionContext, config: ReconcileConfig
) -> dg.MaterializeResult:
    """The page finance opens: what is wrong, how much in the reporting currency, how old and
    what to do, with charts, definitions and the full exception list in one offline HTML file."""
    settings = context.resources.settings.get()
    as_of = _as_of(config, settings)
    with context.resources.duckdb.connect() as con:
        rates = _rates(con, settings, as_of)
        path = render_report(con, settings.output_dir / "report.html", now=as_of, rates=rates)
        meta = report_metadata(con, now=as_of, rates=rates)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path.resolve())),
            "url": dg.MetadataValue.url(path.resolve().as_uri()),
            "open_exceptions": dg.MetadataValue.int(meta["open_exceptions"]),
            **_money_metadata(meta),
        }
    )
