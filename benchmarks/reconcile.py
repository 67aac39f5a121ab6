"""Reconciliation at scale: canonical tables generated straight into DuckDB, then reconciled.

Checks its own answer first: the findings per code must equal the drift the generator put in
(exit status 1 otherwise). Then prints the wall time and peak RSS of the whole reconciliation
(models + exception merge, in a fresh process), and compares the invoice step on the same
tables with datacompy and with a bare DuckDB full-outer-join diff (each the median of --runs
runs), checking that all three find the same invoices.

    python benchmarks/reconcile.py --invoices 1000000
    python benchmarks/reconcile.py --invoices 10000000 --skip-datacompy
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from revops_pipelines.reconciliation.exceptions import update_exceptions
from revops_pipelines.reconciliation.run import now_for, reconciliation_vars, run_reconciliation
from revops_pipelines.sqlmodels import load_models, run_models

AS_OF = "2025-06-28"

# Roughly 1 % of invoices drift, spread over the invoice and payment codes; buckets of 10 000.
GENERATE = """
CREATE OR REPLACE MACRO bucket(key, salt) AS hash(key, salt) % 10000;

INSERT INTO canonical.customer (source_system, source_id, crm_account_id, billing_customer_id,
    erp_customer_id, name, name_norm, email, email_norm, country, currency, legal_entity,
    tax_jurisdiction, is_deleted, is_active, created_at, updated_at)
SELECT sys, id, crm, bil, erp, nm, lower(nm), em, em, 'US', 'USD', 'US01',
       CASE WHEN sys = 'billing' THEN NULL ELSE 'US-CA' END, false, true, TIMESTAMPTZ '2024-01-01',
       TIMESTAMPTZ '2024-01-01'
FROM (
    SELECT 'crm' AS sys, 'A' || i AS id, 'A' || i AS crm, 'cus_' || i AS bil, NULL AS erp,
           'Company ' || i AS nm, NULL AS em, i FROM range($customers) t(i)
    UNION ALL
    SELECT 'billing', 'cus_' || i, 'A' || i, 'cus_' || i, NULL, 'Company ' || i,
           'ap' || i || '@x.example', i FROM range($customers) t(i)
    UNION ALL
    SELECT 'erp', CAST(1000000 + i AS VARCHAR), 'A' || i, 'cus_' || i, CAST(1000000 + i AS VARCHAR),
           CASE WHEN bucket(i, 'name') < 50 THEN 'Company ' || i || ' Ltd' ELSE 'Company ' || i END,
           'ap' || i || '@x.example', i FROM range($customers) t(i)
);

INSERT INTO canonical.legal_entity_subsidiary VALUES ('1', 'US01', 'erp');

INSERT INTO canonical.product (source_system, source_id, sku, name, is_active, is_deleted)
SELECT s, s || '-' || k, 'SKU-' || k, 'Product ' || k, true, false
FROM range(10) t(k), (VALUES ('crm'), ('billing'), ('erp')) v(s);

INSERT INTO canonical.contract (source_system, source_id, account_id, stage, is_closed, is_won,
    close_date, amount_minor, currency, term_months, mrr_minor, billing_subscription_id,
    contract_status, is_deleted)
SELECT 'crm', 'O' || s, 'A' || (s % $customers), 'Closed Won', true, true, DATE '2025-01-01',
       1200000 + (s % 7) * 120000, 'USD', 12, (1200000 + (s % 7) * 120000) / 12.0,
       'sub_' || s, 'Activated', false
FROM range($subscriptions) t(s);

-- 0.3 % of subscriptions bill twice the quantity the opportunity sold.
CREATE TEMP TABLE gen_item AS
SELECT s, CASE WHEN bucket(s, 'qty') < 30 THEN 2 ELSE 1 END AS q,
       (1200000 + (s % 7) * 120000) // 12 AS u
FROM range($subscriptions) t(s);

INSERT INTO canonical.subscription (source_system, source_id, customer_id, crm_opportunity_id,
    status, currency, created_at, cancel_at_period_end, mrr_minor)
SELECT 'billing', 'sub_' || s, 'cus_' || (s % $customers), 'O' || s, 'active', 'USD',
       TIMESTAMPTZ '2025-01-02', false, q * u
FROM gen_item;

INSERT INTO canonical.subscription_item (source_system, source_id, subscription_id, sku,
    quantity, unit_amount_minor, interval, interval_count, monthly_amount_minor, currency)
SELECT 'billing', 'si_' || s, 'sub_' || s, 'SKU-' || (s % 10), q, u, 'month', 1, q * u, 'USD'
FROM gen_item;

CREATE TEMP TABLE gen_invoice AS
SELECT i, 'in_' || i AS id, 'cus_' || ((i % $subscriptions) % $customers) AS customer_id,
       'sub_' || (i % $subscriptions) AS subscription_id,
       1000 + bucket(i, 'amount') * 7 AS total, (1000 + bucket(i, 'amount') * 7) // 10 AS tax,
       CASE WHEN bucket(i, 'state') < 300 THEN 'open' WHEN bucket(i, 'state') < 400 THEN 'void'
            ELSE 'paid' END AS status,
       bucket(i, 'drift') AS d
FROM range($invoices) t(i);

INSERT INTO canonical.invoice (source_system, source_id, billing_invoice_id, customer_id,
    billing_customer_id, subscription_id, status, status_raw, currency, subtotal_minor, tax_minor,
    total_minor, amount_remaining_minor, finalized_at, is_finalized, created_at, updated_at)
SELECT 'billing', id, id, customer_id, customer_id, subscription_id, status, status, 'USD',
       total - tax, tax, total, CASE WHEN status = 'open' THEN total ELSE 0 END,
       TIMESTAMPTZ '2025-02-01', true, TIMESTAMPTZ '2025-02-01', TIMESTAMPTZ '2025-02-01'
FROM gen_invoice;

-- ERP copies: d < 30 missing, < 50 total off, < 60 tax split off, < 65 currency, < 75 status,
-- < 80 posted twice; plus orphans.
INSERT INTO canonical.invoice (source_system, source_id, billing_invoice_id, customer_id,
    billing_customer_id, subscription_id, status, status_raw, currency, subtotal_minor, tax_minor,
    total_minor, amount_remaining_minor, finalized_at, is_finalized, created_at, updated_at)
SELECT 'erp', CAST(copy * 100000000 + 10000000 + i AS VARCHAR), id,
       CAST(1000000 + (i % $subscriptions) % $customers AS VARCHAR), NULL, subscription_id,
       CASE WHEN d >= 65 AND d < 75 THEN (CASE WHEN status = 'void' THEN 'open' ELSE 'void' END)
            ELSE status END,
       NULL,
       CASE WHEN d >= 60 AND d < 65 THEN 'EUR' ELSE 'USD' END,
       total - tax + CASE WHEN d >= 50 AND d < 60 THEN 1 ELSE 0 END,
       tax - CASE WHEN d >= 50 AND d < 60 THEN 1 ELSE 0 END,
       total + CASE WHEN d >= 30 AND d < 50 THEN 100 ELSE 0 END,
       CASE WHEN status = 'open' THEN total ELSE 0 END,
       TIMESTAMPTZ '2025-02-01', true, TIMESTAMPTZ '2025-02-01', TIMESTAMPTZ '2025-02-01'
FROM gen_invoice, range(2) c(copy)
WHERE d >= 30 AND (copy = 0 OR d BETWEEN 75 AND 79);

INSERT INTO canonical.invoice (source_system, source_id, billing_invoice_id, customer_id,
    status, currency, subtotal_minor, tax_minor, total_minor, amount_remaining_minor,
    finalized_at, is_finalized)
SELECT 'erp', CAST(900000000 + k AS VARCHAR), 'in_gone_' || k, '1000000', 'open', 'USD', 900, 100,
       1000, 1000, TIMESTAMPTZ '2025-02-01', true
FROM range($invoices // 5000) t(k);

INSERT INTO canonical.payment (source_system, source_id, billing_payment_id, invoice_id,
    billing_invoice_id, customer_id, amount_minor, currency, status, paid_at)
SELECT 'billing', 'inpay_' || i, 'inpay_' || i, id, id, customer_id, total, 'USD', 'paid',
       TIMESTAMPTZ '2025-02-03'
FROM gen_invoice WHERE status = 'paid';

-- ERP payments: none where the invoice is missing; 0.2 % missing, 0.1 % short.
INSERT INTO canonical.payment (source_system, source_id, billing_payment_id, invoice_id,
    billing_invoice_id, customer_id, amount_minor, currency, status, paid_at)
SELECT 'erp', CAST(20000000 + i AS VARCHAR), 'inpay_' || i, CAST(10000000 + i AS VARCHAR), NULL,
       NULL, total - CASE WHEN bucket(i, 'pay') < 10 THEN 50 ELSE 0 END, 'USD', NULL,
       TIMESTAMPTZ '2025-02-03'
FROM gen_invoice
WHERE status = 'paid' AND d >= 30 AND NOT (bucket(i, 'pay') >= 10 AND bucket(i, 'pay') < 30);
"""

# What GENERATE put in, per code, counted from the generator's own tables (not the findings).
INJECTED = """
SELECT code, n FROM (
    SELECT
        count(*) FILTER (WHERE d < 30) AS invoice_missing_in_erp,
        count(*) FILTER (WHERE d >= 30 AND d < 50) AS invoice_amount_mismatch,
        count(*) FILTER (WHERE d >= 50 AND d < 60) AS invoice_tax_mismatch,
        count(*) FILTER (WHERE d >= 60 AND d < 65) AS invoice_currency_mismatch,
        -- a payment finding on the invoice already explains its state
        count(*) FILTER (WHERE d >= 65 AND d < 75
            AND NOT (status = 'paid' AND bucket(i, 'pay') < 30)) AS invoice_status_mismatch,
        count(*) FILTER (WHERE d >= 75 AND d < 80) AS invoice_duplicate_in_erp,
        $invoices // 5000 AS invoice_orphan_in_erp,
        count(*) FILTER (WHERE status = 'paid' AND d >= 30
            AND bucket(i, 'pay') >= 10 AND bucket(i, 'pay') < 30) AS payment_missing_in_erp,
        count(*) FILTER (WHERE status = 'paid' AND d >= 30 AND bucket(i, 'pay') < 10)
            AS payment_amount_mismatch,
        (SELECT count(*) FROM gen_item WHERE q = 2) AS subscription_amount_mismatch,
        (SELECT count(*) FROM range($customers) t(i) WHERE bucket(i, 'name') < 50)
            AS customer_attribute_mismatch
    FROM gen_invoice
) UNPIVOT (n FOR code IN (COLUMNS(*)))
WHERE n > 0
"""


def create_canonical(con: duckdb.DuckDBPyConnection) -> None:
    """Every canonical table, empty, as the project's own models make them (over empty raw)."""
    run_models(con, [m for m in load_models() if m.schema in {"staging", "canonical"}])


INVOICE_COLUMNS = ("currency", "total_minor", "tax_minor", "subtotal_minor", "state")

# Billing and ERP invoices with one key name and comparable state, for the outside tools.
SIDES = """
CREATE OR REPLACE TEMP VIEW bench_billing AS
SELECT source_id AS invoice_key, upper(currency) AS currency, total_minor, tax_minor,
       subtotal_minor, CASE status WHEN 'uncollectible' THEN 'open' ELSE status END AS state
FROM canonical.invoice WHERE source_system = 'billing' AND finalized_at IS NOT NULL;
CREATE OR REPLACE TEMP VIEW bench_erp AS
SELECT billing_invoice_id AS invoice_key, upper(currency) AS currency, total_minor, tax_minor,
       subtotal_minor, status AS state, source_id
FROM canonical.invoice WHERE source_system = 'erp';
"""


def generate(
    db: Path, *, customers: int, subscriptions: int, invoices: int
) -> tuple[float, dict[str, int]]:
    """Writes the canonical tables; returns the time taken and the drift injected per code."""
    started = time.perf_counter()
    with duckdb.connect(str(db)) as con:
        create_canonical(con)

        def sized(sql: str) -> str:
            return (
                sql.replace("$customers", str(customers))
                .replace("$subscriptions", str(subscriptions))
                .replace("$invoices", str(invoices))
            )

        con.execute(sized(GENERATE))
        injected = {code: int(n) for code, n in con.execute(sized(INJECTED)).fetchall()}
    return time.perf_counter() - started, injected


def reconcile_in_child(db: Path) -> dict:
    """The whole reconciliation in a fresh process, so its peak RSS is its own."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(db)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(db: Path) -> None:
    with duckdb.connect(str(db)) as con:
        started = time.perf_counter()
        counts = run_reconciliation(con, vars=reconciliation_vars(now=now_for(AS_OF)))
        models_s = time.perf_counter() - started
        summary = update_exceptions(con, now=datetime.now(UTC))
        total_s = time.perf_counter() - started
        per_code = dict(
            con.execute(
                "SELECT drift_type, count(*) FROM reconciliation.findings GROUP BY ALL"
            ).fetchall()
        )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss * 1024  # Linux reports KiB
    print(
        json.dumps(
            {
                "models_s": models_s,
                "total_s": total_s,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "peak_rss": peak,
                "findings": counts["findings"],
                "open": summary.open_total,
                "by_type": {code: int(n) for code, n in sorted(per_code.items())},
            }
        )
    )


def bare_diff(con: duckdb.DuckDBPyConnection) -> tuple[float, set[str]]:
    started = time.perf_counter()
    distinct = " OR ".join(f"b.{c} IS DISTINCT FROM e.{c}" for c in INVOICE_COLUMNS)
    keys = con.execute(
        f"""
        SELECT coalesce(b.invoice_key, e.invoice_key)
        FROM bench_billing AS b FULL OUTER JOIN bench_erp AS e USING (invoice_key)
        WHERE b.invoice_key IS NULL OR e.invoice_key IS NULL OR {distinct}
        UNION
        SELECT invoice_key FROM bench_erp GROUP BY invoice_key HAVING count(*) > 1
        """
    ).fetchall()
    return time.perf_counter() - started, {k for (k,) in keys}


def datacompy_diff(con: duckdb.DuckDBPyConnection) -> tuple[float, set[str]]:
    import datacompy

    billing = con.execute("SELECT * FROM bench_billing").df()
    erp = con.execute("SELECT * EXCLUDE (source_id) FROM bench_erp").df()
    started = time.perf_counter()
    # datacompy pairs repeated keys with each other in order, so duplicates need their own check.
    duplicated = set(erp.loc[erp["invoice_key"].duplicated(), "invoice_key"])
    compare = datacompy.PandasCompare(billing, erp, join_columns="invoice_key")
    keys = (
        set(compare.df1_unq_rows["invoice_key"])
        | set(compare.df2_unq_rows["invoice_key"])
        | set(compare.all_mismatch()["invoice_key"])
        | duplicated
    )
    return time.perf_counter() - started, keys


def our_invoice_step(con: duckdb.DuckDBPyConnection) -> tuple[float, set[str]]:
    models = load_models()
    started = time.perf_counter()
    run_models(
        con,
        models,
        select={"invoice_drift"},
        vars=reconciliation_vars(now=now_for(AS_OF)),
    )
    elapsed = time.perf_counter() - started
    keys = con.execute(
        """
        SELECT coalesce(billing_id, actual) FROM reconciliation.invoice_drift
        UNION
        -- a payment finding explains a state difference; count that invoice here as well
        SELECT d.invoice_ref FROM reconciliation.payment_drift AS d
        JOIN canonical.invoice AS b ON b.source_system = 'billing' AND b.source_id = d.invoice_ref
        JOIN canonical.invoice AS e
          ON e.source_system = 'erp' AND e.billing_invoice_id = d.invoice_ref
        WHERE b.status <> e.status
        """
    ).fetchall()
    return elapsed, {k for (k,) in keys if k is not None}


def median_of(
    step: Callable[[duckdb.DuckDBPyConnection], tuple[float, set[str]]],
    con: duckdb.DuckDBPyConnection,
    *,
    runs: int,
) -> tuple[float, set[str]]:
    """The median time of `runs` runs and the keys of the last: the first run of a method also
    pays for reading the tables from disk, which would favour whichever method runs later."""
    times, keys = [], set()
    for _ in range(runs):
        elapsed, keys = step(con)
        times.append(elapsed)
    return statistics.median(times), keys


def check(found: dict[str, int], injected: dict[str, int]) -> list[str]:
    """The codes whose count differs from what was injected, as printable lines."""
    return [
        f"  {code}: found {found.get(code, 0):,}, injected {injected.get(code, 0):,}"
        for code in sorted(found.keys() | injected.keys())
        if found.get(code, 0) != injected.get(code, 0)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--subscriptions", type=int, default=200_000)
    parser.add_argument("--invoices", type=int, default=1_000_000)
    parser.add_argument("--skip-datacompy", action="store_true")
    parser.add_argument("--runs", type=int, default=3, help="each method's time is the median")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        gen_s, injected = generate(
            db,
            customers=args.customers,
            subscriptions=args.subscriptions,
            invoices=args.invoices,
        )
        print(
            f"generated {args.customers:,} customers, {args.subscriptions:,} subscriptions, "
            f"{args.invoices:,} invoices (+ERP copies, payments) in {gen_s:.1f} s"
        )
        whole = reconcile_in_child(db)
        wrong = check(whole["by_type"], injected)
        if wrong:
            print("FAILED: findings per code differ from the injected drift:")
            print("\n".join(wrong))
            return 1
        print(f"findings per code equal the injected drift ({sum(injected.values()):,})")
        print(
            f"whole reconciliation: {whole['total_s']:.2f} s wall "
            f"(models {whole['models_s']:.2f} s), {whole['cpu_s']:.1f} s CPU, "
            f"peak RSS {whole['peak_rss'] / 2**30:.2f} GiB, "
            f"{whole['findings']:,} findings"
        )
        for code, count in whole["by_type"].items():
            print(f"  {code}: {count:,}")

        with duckdb.connect(str(db)) as con:
            con.execute(SIDES)
            ours_s, ours = median_of(our_invoice_step, con, runs=args.runs)
            bare_s, bare = median_of(bare_diff, con, runs=args.runs)
            print(f"invoice step (ours): {ours_s:.2f} s, {len(ours):,} invoices with a difference")
            print(f"bare DuckDB diff:    {bare_s:.2f} s, {len(bare):,}")
            print(f"ours / bare: {ours_s / bare_s:.2f}x")
            same = ours == bare
            if not args.skip_datacompy:
                dc_s, dc = median_of(datacompy_diff, con, runs=args.runs)
                print(f"datacompy:           {dc_s:.2f} s, {len(dc):,}")
                print(f"datacompy / ours: {dc_s / ours_s:.1f}x")
                same = same and dc == bare
            print(f"same invoice differences in all: {same}")
            if not same:
                print(
                    f"  only ours: {sorted(ours - bare)[:5]}  only bare: {sorted(bare - ours)[:5]}"
                )
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
