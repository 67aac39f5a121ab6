"""The report with many open exceptions: render time, file size, and time to the first rows
drawn in headless Chromium (goal: under 2 s for 10,000 open exceptions).

Checks its own answer in the page (row count shown, the most urgent row first, one page
drawn) and exits non-zero when it is wrong.

    python benchmarks/report.py --exceptions 10000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from revops_pipelines.reconciliation.exceptions import update_exceptions
from revops_pipelines.reconciliation.money import Rates, currency_exponents
from revops_pipelines.reconciliation.report import render_report
from revops_pipelines.sqlmodels import load_seeds

AS_OF = datetime(2025, 6, 28, 23, 59, 59, tzinfo=UTC)
GOAL_S = 2.0

FINDINGS = """
CREATE SCHEMA IF NOT EXISTS reconciliation;
CREATE OR REPLACE TABLE reconciliation.findings AS
SELECT
    md5(i::VARCHAR) AS exception_id,
    c.drift_type, c.entity,
    '006' || lpad(i::VARCHAR, 15, '0') AS crm_id,
    'in_' || md5('b' || i::VARCHAR) AS billing_id,
    (100000 + i)::VARCHAR AS erp_id,
    CASE WHEN c.money_values THEN 'total_minor' END AS field,
    CASE WHEN c.money_values THEN (i * 7 % 100000)::VARCHAR END AS expected,
    CASE WHEN c.money_values THEN (i * 7 % 100000 + 100)::VARCHAR END AS actual,
    CASE WHEN i % 3 <> 0 THEN (hash(i) % 5000000)::BIGINT END AS amount_impact_minor,
    (['USD', 'EUR', 'GBP', 'JPY', 'KWD'])[1 + i % 5] AS currency,
    c.severity,
    'c' || i::VARCHAR AS correlation_id,
    c.action,
    'Check invoice ' || i::VARCHAR || ' in both systems and correct the one that is behind'
        AS suggested_action
FROM range(?) AS t(i)
JOIN (SELECT *, row_number() OVER () - 1 AS n FROM seeds.drift_codes) AS c
  ON c.n = t.i % (SELECT count(*) FROM seeds.drift_codes)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exceptions", type=int, default=10_000)
    parser.add_argument(
        "--chromium", default=os.environ.get("REVOPS_CHROMIUM") or shutil.which("chromium")
    )
    args = parser.parse_args()
    if not args.chromium:
        print("no Chromium binary: apt-get install chromium, or pass --chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.html"
        con = duckdb.connect()
        load_seeds(con)
        con.execute(FINDINGS.replace("?", str(int(args.exceptions))))
        update_exceptions(con, now=AS_OF - timedelta(days=5))
        rates = Rates(
            "USD",
            {"USD": 1.0, "EUR": 1.08, "GBP": 1.25, "JPY": 0.0069, "KWD": 3.25},
            currency_exponents(con),
        )
        started = time.perf_counter()
        render_report(con, out, now=AS_OF, rates=rates)
        render_s = time.perf_counter() - started

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            started = time.perf_counter()
            page.goto(out.as_uri(), wait_until="load")
            page.wait_for_selector("#exceptions tbody tr")
            load_s = time.perf_counter() - started
            shown = page.locator("#shown").inner_text()
            first = page.locator("#exceptions tbody tr td").first.inner_text()
            drawn = page.locator("#exceptions tbody tr").count()
            browser.close()
        size_mb = out.stat().st_size / 1e6

    wrong = []
    if shown != f"{args.exceptions:,} shown":
        wrong.append(f"page says {shown!r}, expected {args.exceptions:,} shown")
    if first != "critical":
        wrong.append(f"first row is {first!r}, expected critical")
    if drawn != min(100, args.exceptions):
        wrong.append(f"{drawn} rows drawn, expected one page of {min(100, args.exceptions)}")
    print(f"open exceptions: {args.exceptions:,}")
    print(f"render: {render_s:.2f} s, file: {size_mb:.1f} MB")
    print(
        f"load to first rows in Chromium: {load_s:.2f} s (goal < {GOAL_S:.0f} s: "
        f"{'met' if load_s < GOAL_S else 'NOT met'})"
    )
    for line in wrong:
        print(f"WRONG: {line}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
