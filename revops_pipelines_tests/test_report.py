"""Report, metrics and Dagster metadata from a reconciled world."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import duckdb

from revops_pipelines.reconciliation.exceptions import update_exceptions
from revops_pipelines.reconciliation.metrics import compute_metrics, record_metrics
from revops_pipelines.reconciliation.money import Rates, load_rates
from revops_pipelines.reconciliation.report import render_report, report_metadata, trend_chart
from revops_pipelines_tests.canonical_rows import clean_world, insert_rows, reconcile_world, row

T1 = datetime(2025, 6, 1, tzinfo=UTC)
RATES = Rates("USD", {"USD": 1.0, "JPY": 0.0069}, {"USD": 2, "JPY": 0})


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
    record_metrics(con, now=T1, rates=RATES)
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
    runs = con.execute(
        "SELECT count(DISTINCT run_at) FROM reconciliation.metrics_history"
    ).fetchall()
    assert runs == [(2,)]


def test_report_is_one_self_contained_file_with_charts_and_table(tmp_path) -> None:
    con = _reconciled()
    path = render_report(con, tmp_path / "report.html", now=T1, rates=RATES)
    html = path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html
    assert html.count("<svg") == 6
    data = json.loads(re.search(r'id="exception-data">(.*?)</script>', html, re.S).group(1))
    rows = {r["type"]: r for r in data["rows"]}
    assert rows.keys() == {"invoice_amount_mismatch", "invoice_missing_in_erp"}
    assert rows["invoice_missing_in_erp"]["native_text"] == "5,300 JPY"
    # 5,300 JPY at 0.0069 USD a yen.
    assert rows["invoice_missing_in_erp"]["stake_text"] == "36.57 USD"
    assert rows["invoice_amount_mismatch"]["expected"] == "1,000.00 USD"
    assert rows["invoice_amount_mismatch"]["actual"] == "1,001.00 USD"
    assert rows["invoice_amount_mismatch"]["age"] == 10
    assert [r["sev"] for r in data["rows"]] == ["critical", "high"]
    assert 'Data as of <b id="as-of">2025-06-01</b>' in html
    assert "opportunity_won" in html and "exception_resolved" not in html
    assert "37.57 USD" in html  # the total at stake


def test_metadata_for_dagster() -> None:
    con = _reconciled()
    meta = report_metadata(con, now=T1, rates=RATES)
    assert meta["by_type"] == {"invoice_amount_mismatch": 1, "invoice_missing_in_erp": 1}
    assert meta["money_at_stake_minor"] == {"JPY": 5_300, "USD": 100}
    assert meta["money_at_stake_text"] == {"JPY": "5,300 JPY", "USD": "1.00 USD"}
    assert meta["at_stake_reporting_text"] == "37.57 USD"
    lines = meta["top_markdown"].splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| invoice_amount_mismatch | critical |")
    assert "| 36.57 USD | 5,300 JPY |" in lines[3]


def test_money_uses_the_currency_exponent() -> None:
    rates = Rates("USD", exponents={"JPY": 0, "KWD": 3, "USD": 2})
    assert rates.text(53_165, "JPY") == "53,165 JPY"
    assert rates.text(12_345, "KWD") == "12.345 KWD"
    assert rates.text(531_65, "usd") == "531.65 USD"
    assert rates.text(None, "USD") == ""


def test_rates_convert_directly_through_a_base_or_inverted() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA staging")
    con.execute("CREATE SCHEMA seeds")
    con.execute(
        "CREATE TABLE seeds.currency_exponents AS SELECT * FROM (VALUES "
        "('USD', 2), ('EUR', 2), ('JPY', 0), ('KWD', 3)) AS t(currency, exponent)"
    )
    con.execute(
        "CREATE TABLE staging.stg_erp_currency_rate AS SELECT * FROM (VALUES "
        "('USD', 'EUR', 1.10, DATE '2025-01-01'), ('USD', 'EUR', 1.20, DATE '2025-05-01'), "
        "('USD', 'EUR', 9.99, DATE '2025-07-01'), ('USD', 'JPY', 0.0070, DATE '2025-05-01'), "
        "('USD', 'KWD', 3.25, DATE '2025-04-01')) "
        "AS t(base_currency, currency, rate, effective_date)"
    )
    usd = load_rates(con, "usd", on=T1.date())
    assert usd.convert(1_000, "EUR") == 1_200  # the latest rate on or before the day
    assert usd.convert(1_000, "USD") == 1_000
    assert usd.convert(1_000, "GBP") is None
    assert (usd.first_date.isoformat(), usd.last_date.isoformat()) == ("2025-04-01", "2025-05-01")
    eur = load_rates(con, "EUR", on=T1.date())
    assert eur.convert(1_200, "USD") == 1_000  # inverse of EUR's rate to USD
    assert eur.convert(120, "JPY") == 70  # through the common base: 120 JPY = 0.84 USD


def test_trend_reads_with_one_run_and_with_many() -> None:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA reconciliation")
    con.execute(
        "CREATE TABLE reconciliation.metrics_history "
        "(run_at TIMESTAMPTZ, metric VARCHAR, dimension VARCHAR, value DOUBLE)"
    )
    con.execute(
        "INSERT INTO reconciliation.metrics_history VALUES (?, 'open_exceptions_by_age', '0-1', 3)",
        [T1],
    )
    one = trend_chart(con)
    assert len(one["points"]) == 1 and one["note"] and one["points"][0]["tick"]
    con.executemany(
        "INSERT INTO reconciliation.metrics_history VALUES (?, 'open_exceptions_by_age', '0-1', ?)",
        [[T1 + timedelta(hours=n), float(n % 7)] for n in range(1, 60)],
    )
    many = trend_chart(con)
    ticks = [p for p in many["points"] if p["tick"]]
    assert len(many["points"]) == 60 and 2 <= len(ticks) <= 7 and many["points"][-1]["tick"]
    # The last dated tick stays inside the drawing, with room for its label.
    assert many["points"][-1]["x"] + 40 <= many["width"]
    assert not many["note"]


def test_rates_file_replaces_the_erp_rates(tmp_path) -> None:
    rates_file = tmp_path / "rates.csv"
    rates_file.write_text(
        "base_currency,currency,rate,effective_date\nUSD,EUR,1.5,2025-05-01\nusd,jpy,0.01,2025-07-01\n"
    )
    con = duckdb.connect()
    rates = load_rates(con, "USD", on=T1.date(), rates_file=rates_file)
    assert rates.convert(1_000, "EUR") == 1_500
    assert rates.convert(1_000, "JPY") is None  # its only rate starts after the as-of day
    assert rates.source == str(rates_file) and "2025-05-01" in rates.as_of_text()


def test_records_not_reconciled_from_both_quarantines(tmp_path) -> None:
    con = _reconciled()
    path = render_report(con, tmp_path / "none.html", now=T1, rates=RATES)
    assert 'id="not-reconciled-none"' in path.read_text()
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute(
        "CREATE TABLE raw._quarantine (stream VARCHAR, reason VARCHAR, payload VARCHAR, "
        "extracted_at TIMESTAMPTZ, run_id VARCHAR)"
    )
    con.executemany(
        "INSERT INTO raw._quarantine VALUES ('billing_invoice', 'missing id', '{}', ?, 'r1')",
        [[T1], [T1]],
    )
    con.execute(
        # reconciliation made an empty one (findings read it); these rows stand for the checks'
        "CREATE OR REPLACE TABLE canonical.quarantine (table_name VARCHAR, source_system VARCHAR, "
        "source_id VARCHAR, column_name VARCHAR, rule VARCHAR, value VARCHAR, "
        "quarantined_at TIMESTAMPTZ)"
    )
    con.execute(
        "INSERT INTO canonical.quarantine VALUES "
        "('invoice', 'erp', '5009', 'currency', 'not null', NULL, ?)",
        [T1],
    )
    html = render_report(con, tmp_path / "some.html", now=T1, rates=RATES).read_text()
    table = html[html.index('id="not-reconciled"') :]
    assert "billing_invoice" in table and "missing id" in table
    assert "invoice (erp)" in table and "currency: not null" in table
