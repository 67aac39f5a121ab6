"""The report as a person sees it: opened in headless Chromium through Playwright.

Skipped, with the reason, where the `playwright` package or a Chromium binary is missing;
CI installs Debian's `chromium` (REVOPS_CHROMIUM names another binary).
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from revops_pipelines.reconciliation.exceptions import update_exceptions
from revops_pipelines.reconciliation.money import Rates, currency_exponents
from revops_pipelines.reconciliation.report import render_report
from revops_pipelines.sqlmodels import load_seeds

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
CHROMIUM = os.environ.get("REVOPS_CHROMIUM") or shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM, reason="no Chromium binary: apt-get install chromium, or set REVOPS_CHROMIUM"
)

AS_OF = datetime(2025, 6, 1, 23, 59, 59, tzinfo=UTC)
VIEWPORT = {"width": 1600, "height": 1000}
# (drift_type, severity, amount_impact_minor, currency): listed out of severity order.
FINDINGS = (
    ("customer_duplicate", "medium", None, None),
    ("invoice_missing_in_erp", "high", 5_300, "JPY"),
    ("unlinked_match", "low", None, None),
    ("invoice_amount_mismatch", "critical", 1_234, "KWD"),
    ("payment_missing_in_erp", "high", 250_000, "USD"),
    ("subscription_amount_mismatch", "medium", 10_000, "USD"),
)
RATES = {"USD": 1.0, "JPY": 0.0069, "KWD": 3.25}


def _findings(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS reconciliation")
    con.execute(
        "CREATE OR REPLACE TABLE reconciliation.findings (exception_id VARCHAR, "
        "drift_type VARCHAR, entity VARCHAR, crm_id VARCHAR, billing_id VARCHAR, erp_id VARCHAR, "
        "field VARCHAR, expected VARCHAR, actual VARCHAR, amount_impact_minor BIGINT, "
        "currency VARCHAR, severity VARCHAR, correlation_id VARCHAR, action VARCHAR, "
        "suggested_action VARCHAR)"
    )
    con.executemany(
        "INSERT INTO reconciliation.findings VALUES (?, ?, 'invoice', NULL, ?, NULL, NULL, "
        "NULL, NULL, ?, ?, ?, ?, 'review', 'Look at invoice ' || ?)",
        [
            (
                f"x{i}",
                code,
                f"in_1Pq7Zr2eZvKYlo2C{i:04d}",
                amount,
                currency,
                sev,
                f"c{i}",
                f"in_{i}",
            )
            for i, (code, sev, amount, currency) in enumerate(FINDINGS)
        ],
    )


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    con = duckdb.connect()
    load_seeds(con)
    _findings(con)
    update_exceptions(con, now=AS_OF - timedelta(days=3))
    rates = Rates("USD", RATES, currency_exponents(con))
    render_report(con, out, now=AS_OF, rates=rates)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(out.as_uri())
        page.wait_for_selector("#exceptions tbody tr")
        yield page
        browser.close()


def _column(page, css: str) -> list[str]:
    return [t.strip() for t in page.locator(f"#exceptions tbody tr {css}").all_inner_texts()]


def test_severity_sorts_by_rank_not_by_name(page) -> None:
    rank = ["critical", "high", "high", "medium", "medium", "low"]
    assert _column(page, "td:nth-child(1)") == rank
    header = page.locator("#exceptions th", has_text="severity")
    header.click()  # ascending by rank
    assert _column(page, "td:nth-child(1)") == rank
    header.click()
    assert _column(page, "td:nth-child(1)") == rank[::-1]


def test_header_shows_the_as_of_date_and_the_run(page) -> None:
    assert page.locator("#as-of").inner_text() == "2025-06-01"
    assert page.locator("#run-at").inner_text().endswith("UTC")


def test_total_at_stake_is_in_the_reporting_currency(page) -> None:
    # 2,500.00 USD + 100.00 USD + 5,300 JPY x 0.0069 + 1.234 KWD x 3.25
    card = page.locator('.card[data-kpi="At stake (USD)"] .value').inner_text()
    assert card == f"{2_500.00 + 100.00 + 36.57 + 4.01:,.2f} USD"


def test_each_currency_keeps_its_own_decimals(page) -> None:
    native = _column(page, "td.native")
    stake = _column(page, "td.stake")
    assert "5,300 JPY" in native and "1.234 KWD" in native
    assert "36.57 USD" in stake and "4.01 USD" in stake


def test_table_fits_the_viewport(page) -> None:
    width = page.evaluate("document.getElementById('exceptions').getBoundingClientRect().right")
    assert width <= VIEWPORT["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]


def test_ids_are_short_with_the_full_id_on_hover(page) -> None:
    first = page.locator("#exceptions tbody tr .id").first
    full = first.get_attribute("data-copy")
    assert full.startswith("in_1Pq7Zr2eZvKYlo2C") and first.get_attribute("title") == full
    assert len(first.inner_text()) < len(full)


def test_stake_sorts_in_the_reporting_currency(page) -> None:
    page.locator("#exceptions th", has_text="at stake").click()  # largest first
    stake = [s for s in _column(page, "td.stake") if s]
    assert stake == ["2,500.00 USD", "100.00 USD", "36.57 USD", "4.01 USD"]
