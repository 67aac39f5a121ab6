"""One reading of the exceptions: report, metrics, demo summary and metadata agree on known rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from revops_pipelines.demo import summarize_exceptions
from revops_pipelines.reconciliation.exceptions import update_exceptions
from revops_pipelines.reconciliation.metrics import compute_metrics
from revops_pipelines.reconciliation.report import report_context, report_metadata
from revops_pipelines_tests.canonical_rows import create_canonical

NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)

# (drift_type, severity, action, amount_impact_minor, currency, days old)
KNOWN = (
    ("invoice_amount_mismatch", "critical", "review", 1_000, "USD", 1.5),
    ("invoice_missing_in_erp", "high", "auto", 250, "USD", 0.25),
    ("invoice_missing_in_erp", "high", "auto", None, "USD", 3.0),
    ("payment_missing_in_erp", "high", "auto", 5_300, "JPY", 7.5),
    ("customer_duplicate", "medium", "review", None, None, 12.0),
    ("unlinked_match", "low", "auto", 40, None, 45.0),
)


def _findings(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS reconciliation")
    con.execute(
        "CREATE OR REPLACE TABLE reconciliation.findings (exception_id VARCHAR, "
        "drift_type VARCHAR, entity VARCHAR, crm_id VARCHAR, billing_id VARCHAR, erp_id VARCHAR, "
        "field VARCHAR, expected VARCHAR, actual VARCHAR, amount_impact_minor BIGINT, "
        "currency VARCHAR, severity VARCHAR, correlation_id VARCHAR, action VARCHAR, "
        "suggested_action VARCHAR)"
    )
    con.executemany(
        "INSERT INTO reconciliation.findings VALUES "
        "(?, ?, 'invoice', NULL, ?, NULL, NULL, NULL, NULL, ?, ?, ?, ?, ?, 'look')",
        rows,
    )


def _store(path: Path) -> duckdb.DuckDBPyConnection:
    """Each known row first detected its number of days before NOW."""
    con = duckdb.connect(str(path))
    create_canonical(con)
    for n in range(len(KNOWN)):
        rows = [
            (f"x{i}", code, f"in_{i}", amount, currency, severity, f"c{i}", action)
            for i, (code, severity, action, amount, currency, _) in enumerate(KNOWN)
            if i <= n
        ]
        _findings(con, rows)
        update_exceptions(con, now=NOW - timedelta(days=KNOWN[n][5]))
    return con


def test_report_metrics_summary_and_metadata_agree(tmp_path: Path) -> None:
    con = _store(tmp_path / "store.duckdb")
    metrics = {(m.metric, m.dimension): m.value for m in compute_metrics(con, now=NOW)}
    context = report_context(con, now=NOW)
    meta = report_metadata(con)

    metric_aging = {
        d: int(v) for (name, d), v in metrics.items() if name == "open_exceptions_by_age"
    }
    report_aging = {
        r["label"]: int(r["segments"][0]["value"]) for r in context["charts"]["aging"]["rows"]
    }
    # 1.5 days old is one whole day: the 0-1 bucket on every screen.
    assert metric_aging == report_aging == {"0-1": 2, "2-7": 2, "8-30": 1, ">30": 1}

    open_total = len(KNOWN)
    assert context["summary"]["open"] == meta["open_exceptions"] == open_total
    assert metrics[("manual_reconciliation_items", "review")] == context["summary"]["review"] == 2

    # Money at stake: rows with both an amount and a currency, nothing else.
    metric_money = {d: int(v) for (name, d), v in metrics.items() if name == "money_at_stake_minor"}
    assert metric_money == meta["money_at_stake_minor"] == {"USD": 1_250, "JPY": 5_300}

    con.close()
    summary = summarize_exceptions(tmp_path / "store.duckdb")
    assert summary.startswith(
        f"open exceptions: {open_total} (critical 1, high 3, medium 1, low 1)"
    )
    assert "need review: 2" in summary
