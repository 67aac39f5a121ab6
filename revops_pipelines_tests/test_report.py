"""Report, metrics and Dagster metadata from a reconciled world."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import duckdb

from revops_pipelines.recon.exceptions import update_exceptions
from revops_pipelines.recon.metrics import compute_metrics, record_metrics
from revops_pipelines.recon.report import format_money, render_report, report_metadata
from revops_pipelines_tests.canonical_rows import clean_world, insert_rows, reconcile_world, row

T1 = datetime(2025, 6, 1, tzinfo=UTC)


def _world() -> dict:
    w = clean_world()
    row(w, "invoice", "5001").update(total_minor=100_100, subtotal_minor=92_100)
    w["invoice"].append(
        {
            "source_system": "billing",
            "source_id": "in_J",
            "customer_id": "cus_A",
            "status": "open",
            "total_minor": 5_300,
            "currency": "JPY",
        }
    )
    return w


def _lifecycle(con: duckdb.DuckDBPyConnection) -> None:
    insert_rows(
        con,
        "lifecycle_event",
        [
            {
                "correlation_id": "006O",
                "stage": "opportunity_won",
                "system": "crm",
                "record_id": "006O",
                "occurred_at": datetime(2025, 1, 10, tzinfo=UTC),
            },
            {
                "correlation_id": "006O",
                "stage": "subscription_provisioned",
                "system": "billing",
                "record_id": "sub_S",
                "occurred_at": datetime(2025, 1, 11, tzinfo=UTC),
            },
            {
                "correlation_id": "006O",
                "stage": "invoice_generated",
                "system": "billing",
                "record_id": "in_I",
                "occurred_at": datetime(2025, 1, 12, tzinfo=UTC),
            },
            {
                "correlation_id": "006O",
                "stage": "payment_applied",
                "system": "billing",
                "record_id": "inpay_P",
                "occurred_at": datetime(2025, 1, 20, tzinfo=UTC),
            },
        ],
    )


def _reconciled() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    reconcile_world(_world(), con=con)
    _lifecycle(con)
    update_exceptions(con, now=T1 - timedelta(days=10))
    record_metrics(con, now=T1 - timedelta(days=10))
    reconcile_world(_world(), con=con)
    _lifecycle(con)
    update_exceptions(con, now=T1)
    record_metrics(con, now=T1)
    return con


def test_metrics_from_lifecycle_and_exceptions() -> None:
    con = _reconciled()
    metrics = {(m.metric, m.dimension): m.value for m in compute_metrics(con, now=T1)}
    assert metrics[("quote_to_cash_days", "p50")] == 10.0
    assert metrics[("quote_to_cash_histogram", "8-14")] == 1
    # Both findings were first seen ten days ago.
    assert metrics[("open_exceptions_by_age", "8-30")] == 2
    assert metrics[("open_exceptions_by_age", "0-1")] == 0
    assert metrics[("money_at_stake_minor", "USD")] == 100
    assert metrics[("money_at_stake_minor", "JPY")] == 5_300
    assert metrics[("manual_reconciliation_items", "review")] == 1
    # Two finalized billing invoices, one wrong in the ERP, one missing there.
    assert metrics[("invoice_accuracy", "share")] == 0.0
    runs = con.execute("SELECT count(DISTINCT run_at) FROM recon.metrics_history").fetchall()
    assert runs == [(2,)]


def test_report_is_one_self_contained_file_with_charts_and_table(tmp_path) -> None:
    con = _reconciled()
    path = render_report(con, tmp_path / "report.html", now=T1)
    html = path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html
    assert html.count("<svg") == 6
    for text in ("invoice_amount_mismatch", "invoice_missing_in_erp", "5,300 JPY", "1.00 USD"):
        assert text in html, text
    assert html.count('<tr data-type="') == 2
    assert "opportunity_won" in html


def test_metadata_for_dagster() -> None:
    con = _reconciled()
    meta = report_metadata(con)
    assert meta["by_type"] == {"invoice_amount_mismatch": 1, "invoice_missing_in_erp": 1}
    assert meta["money_at_stake_minor"] == {"JPY": 5_300, "USD": 100}
    lines = meta["top_markdown"].splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| invoice_amount_mismatch | critical |")


def test_money_uses_the_currency_exponent() -> None:
    exponents = {"JPY": 0, "KWD": 3, "USD": 2}
    assert format_money(53_165, "JPY", exponents) == "53,165"
    assert format_money(12_345, "KWD", exponents) == "12.345"
    assert format_money(531_65, "usd", exponents) == "531.65"
