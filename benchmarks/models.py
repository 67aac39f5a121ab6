# ruff: noqa: E501  (the generator SQL reads best unwrapped)
"""Staging + canonical build time and peak memory on a large synthetic raw dataset.

Raw tables are generated inside DuckDB (generate_series → JSON payloads in the raw shape):
by default 100k customers per system, 200k subscriptions, 1M invoices and 1M payments in
billing, with the ERP holding a posted copy of every invoice and payment.

Checks its own answer before printing figures (exit status 1 otherwise): every canonical table
holds the rows generated for it, and billing and the ERP agree on the money of every currency
(invoice totals, tax and payments, in the canonical minor unit), as the copies were made so.

    python benchmarks/models.py [--scale 1.0] [--db PATH]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from revops_pipelines.sqlmodels import load_models, run_models
from revops_pipelines.sqlmodels.loader import RAW_TABLE_COLUMNS

CURRENCIES = "['usd', 'eur', 'jpy', 'kwd', 'gbp']"


def _raw(con: duckdb.DuckDBPyConnection, table: str, select: str) -> None:
    con.execute(f"CREATE OR REPLACE TABLE raw.{table} ({RAW_TABLE_COLUMNS})")
    con.execute(
        f"INSERT INTO raw.{table} SELECT id, payload, NULL, false, 'bench', now(), 'bench' "
        f"FROM ({select})"
    )


def generate(con: duckdb.DuckDBPyConnection, *, scale: float) -> dict[str, int]:
    customers = int(100_000 * scale)
    subscriptions = int(200_000 * scale)
    invoices = int(1_000_000 * scale)
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    cur = f"{CURRENCIES}[1 + i % 5]"
    _raw(
        con,
        "crm_account",
        f"""
        SELECT printf('001%015d', i) AS id, json_object(
            'Id', printf('001%015d', i), 'Name', 'Customer ' || i, 'ParentId', NULL,
            'BillingCountry', 'US', 'CurrencyIsoCode', upper({cur}), 'Legal_Entity__c', 'US01',
            'Tax_Jurisdiction__c', 'US-CA', 'Billing_Customer_Id__c', 'cus_' || i,
            'IsDeleted', false, 'CreatedDate', '2025-01-02T03:04:05.000+0000',
            'LastModifiedDate', '2025-01-02T03:04:05.000+0000') AS payload
        FROM range({customers}) t(i)""",
    )
    _raw(
        con,
        "crm_opportunity",
        f"""
        SELECT printf('006%015d', i) AS id, json_object(
            'Id', printf('006%015d', i), 'AccountId', printf('001%015d', i % {customers}),
            'Name', 'Deal ' || i, 'StageName', 'Closed Won', 'IsClosed', true, 'IsWon', true,
            'CloseDate', '2025-01-15', 'Amount', (i % 1000) * 12 + 0.25,
            'CurrencyIsoCode', upper({cur}), 'Contract_Term_Months__c', 12,
            'Billing_Subscription_Id__c', 'sub_' || i, 'IsDeleted', false,
            'CreatedDate', '2025-01-02T03:04:05.000+0000') AS payload
        FROM range({subscriptions}) t(i)""",
    )
    _raw(
        con,
        "crm_contract",
        f"""
        SELECT printf('800%015d', i) AS id, json_object(
            'Id', printf('800%015d', i), 'AccountId', printf('001%015d', i % {customers}),
            'Opportunity__c', printf('006%015d', i), 'StartDate', '2025-02-01',
            'EndDate', '2026-01-31', 'ContractTerm', 12, 'Status', 'Activated',
            'IsDeleted', false, 'SystemModstamp', '2025-01-02T03:04:05.000+0000') AS payload
        FROM range({subscriptions}) t(i)""",
    )
    _raw(
        con,
        "crm_product",
        """
        SELECT '01t' || i AS id, json_object('Id', '01t' || i, 'ProductCode', 'SKU-' || i,
            'Name', 'Product ' || i, 'IsActive', true, 'IsDeleted', false) AS payload
        FROM range(20) t(i)""",
    )
    _raw(
        con,
        "billing_product",
        """
        SELECT 'prod_' || i AS id, json_object('id', 'prod_' || i, 'name', 'Product ' || i,
            'active', true, 'created', 1735787045, 'metadata', json_object('sku', 'SKU-' || i)) AS payload
        FROM range(20) t(i)""",
    )
    _raw(
        con,
        "billing_customer",
        f"""
        SELECT 'cus_' || i AS id, json_object('id', 'cus_' || i, 'name', 'Customer ' || i,
            'email', 'ap' || i || '@example.com', 'currency', {cur}, 'created', 1735787045,
            'address', json_object('country', 'US'),
            'metadata', json_object('crm_account_id', printf('001%015d', i),
                                    'legal_entity', 'US01')) AS payload
        FROM range({customers}) t(i)""",
    )
    _raw(
        con,
        "billing_subscription",
        f"""
        SELECT 'sub_' || i AS id, json_object('id', 'sub_' || i, 'customer', 'cus_' || (i % {customers}),
            'status', 'active', 'currency', {cur}, 'created', 1738368000, 'start_date', 1738368000,
            'cancel_at_period_end', false,
            'metadata', json_object('crm_opportunity_id', printf('006%015d', i)),
            'items', json_object('data', json_array(json_object('id', 'si_' || i, 'quantity', 1 + i % 5,
                'current_period_start', 1748736000, 'current_period_end', 1751328000,
                'price', json_object('id', 'price_' || (i % 20), 'product', 'prod_' || (i % 20),
                    'currency', {cur}, 'unit_amount', 100 * (i % 1000),
                    'recurring', json_object('interval', 'month', 'interval_count', 1)))))) AS payload
        FROM range({subscriptions}) t(i)""",
    )
    _raw(
        con,
        "billing_invoice",
        f"""
        SELECT 'in_' || i AS id, json_object('id', 'in_' || i,
            'customer', 'cus_' || (i % {customers}), 'number', 'INV-' || i, 'status', 'paid',
            'currency', {cur}, 'created', 1735689600 + (i % 365) * 86400,
            'period_start', 1735689600 + (i % 365) * 86400,
            'period_end', 1735689600 + (i % 365 + 30) * 86400,
            'subtotal', 10000 + i % 977, 'total', 11000 + i % 977,
            'amount_due', 11000 + i % 977, 'amount_paid', 11000 + i % 977, 'amount_remaining', 0,
            'total_taxes', json_array(json_object('amount', 1000)),
            'parent', json_object('subscription_details', json_object('subscription', 'sub_' || (i % {subscriptions}))),
            'lines', json_object('data', json_array(json_object('id', 'il_' || i,
                'amount', 10000 + i % 977, 'currency', {cur}, 'quantity', 1,
                'period', json_object('start', 1735689600 + (i % 365) * 86400,
                                      'end', 1735689600 + (i % 365 + 30) * 86400),
                'pricing', json_object('price_details', json_object('price', 'price_' || (i % 20),
                                                                    'product', 'prod_' || (i % 20)))))),
            'status_transitions', json_object('finalized_at', 1735693200 + (i % 365) * 86400,
                                              'paid_at', 1735696800 + (i % 365) * 86400)) AS payload
        FROM range({invoices}) t(i)""",
    )
    _raw(
        con,
        "billing_invoice_payment",
        f"""
        SELECT 'inpay_' || i AS id, json_object('id', 'inpay_' || i, 'invoice', 'in_' || i,
            'amount_paid', 11000 + i % 977, 'amount_requested', 11000 + i % 977, 'currency', {cur},
            'status', 'paid', 'created', 1735696800,
            'status_transitions', json_object('paid_at', 1735696800 + (i % 365) * 86400)) AS payload
        FROM range({invoices}) t(i)""",
    )
    _raw(
        con,
        "erp_currency",
        f"""
        SELECT (i + 1)::VARCHAR AS id, json_object('id', (i + 1)::VARCHAR,
            'symbol', upper({cur}), 'name', upper({cur})) AS payload FROM range(5) t(i)""",
    )
    _raw(
        con,
        "erp_subsidiary",
        """
        SELECT '1' AS id, json_object('id', '1', 'name', 'US Inc', 'country', 'US', 'currency', '1',
            'custrecord_legal_entity_code', 'US01') AS payload""",
    )
    _raw(
        con,
        "erp_item",
        """
        SELECT (100 + i)::VARCHAR AS id, json_object('id', (100 + i)::VARCHAR, 'itemid', 'SKU-' || i,
            'externalid', 'prod_' || i, 'isinactive', 'F') AS payload FROM range(20) t(i)""",
    )
    _raw(
        con,
        "erp_customer",
        f"""
        SELECT (1000000 + i)::VARCHAR AS id, json_object('id', (1000000 + i)::VARCHAR,
            'externalid', 'cus_' || i, 'companyname', 'Customer ' || i,
            'email', 'ap' || i || '@example.com', 'subsidiary', '1', 'currency', (1 + i % 5)::VARCHAR,
            'custentity_crm_account_id', printf('001%015d', i), 'custentity_tax_jurisdiction', 'US-CA',
            'isinactive', 'F', 'datecreated', '2025-01-02T03:10:00Z') AS payload
        FROM range({customers}) t(i)""",
    )
    inv_id = "(10000000 + i)::VARCHAR"
    pay_id = "(20000000 + i)::VARCHAR"
    major_total = (
        f"((11000 + i % 977) / CASE {cur} WHEN 'jpy' THEN 1 WHEN 'kwd' THEN 1000 ELSE 100 END)"
    )
    major_tax = f"(1000 / CASE {cur} WHEN 'jpy' THEN 1 WHEN 'kwd' THEN 1000 ELSE 100 END)"
    _raw(
        con,
        "erp_invoice",
        f"""
        SELECT {inv_id} AS id, json_object('id', {inv_id}, 'type', 'CustInvc', 'tranid', 'INV-' || i,
            'trandate', '2025-02-01', 'entity', (1000000 + i % {customers})::VARCHAR,
            'subsidiary', '1', 'currency', (1 + i % 5)::VARCHAR, 'externalid', 'in_' || i,
            'foreigntotal', {major_total}, 'foreigntaxtotal', {major_tax},
            'foreignamountremaining', 0, 'status', 'paidInFull',
            'datecreated', '2025-02-01T00:05:00Z', 'lastmodifieddate', '2025-02-01T00:05:00Z') AS payload
        FROM range({invoices}) t(i)""",
    )
    _raw(
        con,
        "erp_transaction_line",
        f"""
        SELECT {inv_id} || '-1' AS id, json_object('id', {inv_id} || '-1', 'transaction', {inv_id},
            'linesequencenumber', 1, 'item', (100 + i % 20)::VARCHAR, 'quantity', 1,
            'rate', {major_total} - {major_tax}, 'foreignamount', {major_total} - {major_tax}) AS payload
        FROM range({invoices}) t(i)""",
    )
    _raw(
        con,
        "erp_customer_payment",
        f"""
        SELECT {pay_id} AS id, json_object('id', {pay_id}, 'type', 'CustPymt', 'tranid', 'PYMT-' || i,
            'trandate', '2025-02-03', 'entity', (1000000 + i % {customers})::VARCHAR,
            'currency', (1 + i % 5)::VARCHAR, 'externalid', 'inpay_' || i,
            'foreigntotal', {major_total}, 'lastmodifieddate', '2025-02-03T00:05:00Z') AS payload
        FROM range({invoices}) t(i)""",
    )
    _raw(
        con,
        "erp_previous_transaction_link",
        f"""
        SELECT {inv_id} || '-' || {pay_id} AS id, json_object('id', {inv_id} || '-' || {pay_id},
            'previousdoc', {inv_id}, 'nextdoc', {pay_id}, 'linktype', 'Payment',
            'foreignamount', {major_total}) AS payload
        FROM range({invoices}) t(i)""",
    )
    return {"customers": customers, "subscriptions": subscriptions, "invoices": invoices}


# Money per currency that billing and the ERP must agree on: (label, billing SQL, ERP SQL).
MONEY_CHECKS = (
    ("invoice total", "invoice", "total_minor"),
    ("invoice tax", "invoice", "tax_minor"),
    ("payments", "payment", "amount_minor"),
)


def check(con: duckdb.DuckDBPyConnection, sizes: dict[str, int]) -> list[str]:
    """What differs from what was generated, as printable lines (none when right)."""
    customers, subscriptions, invoices = (
        sizes["customers"],
        sizes["subscriptions"],
        sizes["invoices"],
    )
    expected = {
        "customer": 3 * customers,
        "contract": subscriptions,
        "subscription": subscriptions,
        "subscription_item": subscriptions,
        "product": 60,
        "invoice": 2 * invoices,
        "invoice_line": 2 * invoices,
        "payment": 2 * invoices,
        "legal_entity_subsidiary": 1,
    }
    wrong = []
    for table, rows in expected.items():
        found = con.execute(f"SELECT count(*) FROM canonical.{table}").fetchall()[0][0]
        if found != rows:
            wrong.append(f"  canonical.{table}: {found:,} rows, generated {rows:,}")
    for label, table, column in MONEY_CHECKS:
        differing = con.execute(
            f"""
            SELECT currency, sum({column}) FILTER (WHERE source_system = 'billing'),
                   sum({column}) FILTER (WHERE source_system = 'erp')
            FROM canonical.{table} GROUP BY currency
            HAVING sum({column}) FILTER (WHERE source_system = 'billing')
                IS DISTINCT FROM sum({column}) FILTER (WHERE source_system = 'erp')
            """
        ).fetchall()
        wrong += [f"  {label} in {c}: billing {b}, ERP {e}" for c, b, e in differing]
    return wrong


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--db", type=Path, default=None, help="DuckDB file (default: a temp file)")
    parser.add_argument("--memory-limit", default="1536MB")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.duckdb"
        con = duckdb.connect(str(db))
        con.execute(f"SET memory_limit = '{args.memory_limit}'")
        con.execute("SET enable_progress_bar = false")
        started = time.perf_counter()
        sizes = generate(con, scale=args.scale)
        generated = time.perf_counter() - started
        print(f"raw generated in {generated:.1f} s: {sizes}")

        models = [m for m in load_models() if m.schema in {"staging", "canonical"}]
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        counts = run_models(con, models)
        elapsed, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
        wrong = check(con, sizes)
        con.close()
    if wrong:
        print("FAILED: the canonical tables are not what was generated:")
        print("\n".join(wrong))
        return 1
    print("canonical rows and billing/ERP money per currency are what was generated")

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"staging + canonical: {len(counts)} models in {elapsed:.1f} s wall, {cpu:.1f} s CPU")
    print(f"  (load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    for name in ("invoice", "invoice_line", "payment", "revenue_event", "customer_xref"):
        print(f"  canonical.{name}: {counts[name]} rows")
    print(f"peak RSS: {peak_mib:.0f} MiB (whole process, generation included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
