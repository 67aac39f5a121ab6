"""Raw tables (docs/DATA_MODEL.md "Raw tables") built directly in DuckDB, without extraction.

Tests and benchmarks build `raw.<system>_<stream>` from hand-written dicts or from a state
directory, so the SQL models run without servers or connectors. ERP rows are SuiteQL-shaped, made
by the sandbox's own projection (`suiteql.build_rows`) so the shape is written once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from revops_pipelines.sandbox.suiteql import build_rows
from revops_pipelines.sqlmodels.loader import RAW_TABLE_COLUMNS

# raw table → (state file, primary key field, cursor field)
CRM_STREAMS = {
    "crm_account": ("crm/Account.jsonl", "Id", "SystemModstamp"),
    "crm_opportunity": ("crm/Opportunity.jsonl", "Id", "SystemModstamp"),
    "crm_opportunity_line_item": ("crm/OpportunityLineItem.jsonl", "Id", "SystemModstamp"),
    "crm_product": ("crm/Product2.jsonl", "Id", "SystemModstamp"),
    "crm_contract": ("crm/Contract.jsonl", "Id", "SystemModstamp"),
}
BILLING_STREAMS = {
    "billing_customer": ("billing/customers.jsonl", "id", "created"),
    "billing_product": ("billing/products.jsonl", "id", "created"),
    "billing_price": ("billing/prices.jsonl", "id", "created"),
    "billing_subscription": ("billing/subscriptions.jsonl", "id", "created"),
    "billing_invoice": ("billing/invoices.jsonl", "id", "created"),
    "billing_invoice_payment": ("billing/invoice_payments.jsonl", "id", "created"),
    "billing_credit_note": ("billing/credit_notes.jsonl", "id", "created"),
}
ERP_RECORD_FILES = ("subsidiary", "customer", "item", "invoice", "customerpayment", "creditmemo")
# SuiteQL table → raw tables; transactions are split by type into one stream per record type.
ERP_TRANSACTION_STREAMS = {
    "CustInvc": "erp_invoice",
    "CustPymt": "erp_customer_payment",
    "CustCred": "erp_credit_memo",
}
ALL_RAW_TABLES = (
    *CRM_STREAMS,
    *BILLING_STREAMS,
    "erp_subsidiary",
    "erp_currency",
    "erp_customer",
    "erp_item",
    *ERP_TRANSACTION_STREAMS.values(),
    "erp_transaction_line",
    "erp_previous_transaction_link",
)


def create_raw_tables(
    con: duckdb.DuckDBPyConnection, tables: Iterable[str] = ALL_RAW_TABLES
) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for table in tables:
        con.execute(f"CREATE TABLE IF NOT EXISTS raw.{table} ({RAW_TABLE_COLUMNS})")


def _record_id(table: str, record: Mapping[str, Any]) -> str:
    for key in ("Id", "id"):
        if record.get(key) is not None:
            return str(record[key])
    raise ValueError(f"raw.{table}: record has no Id/id: {record!r}")


def _is_deleted(record: Mapping[str, Any]) -> bool:
    return bool(record.get("IsDeleted") or record.get("deleted"))


def insert_records(
    con: duckdb.DuckDBPyConnection,
    table: str,
    records: Iterable[Mapping[str, Any]],
    *,
    cursor_field: str | None = None,
    run_id: str = "test",
) -> int:
    """Replaces rows of `raw.<table>` by id with these payloads (the latest version wins)."""
    create_raw_tables(con, [table])
    now = datetime.now(UTC)
    rows = [
        (
            _record_id(table, record),
            json.dumps(record),
            None if cursor_field is None else _text(record.get(cursor_field)),
            _is_deleted(record),
            "test",
            now,
            run_id,
        )
        for record in records
    ]
    if not rows:
        return 0
    con.execute(
        f"DELETE FROM raw.{table} WHERE id IN (SELECT unnest(?::VARCHAR[]))", [[r[0] for r in rows]]
    )
    con.executemany(f"INSERT INTO raw.{table} VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def load_raw(
    con: duckdb.DuckDBPyConnection, tables: Mapping[str, Iterable[Mapping[str, Any]]]
) -> dict[str, int]:
    """Raw tables from dicts: {"crm_account": [{...}], "erp_invoice": [suiteql row, ...], ...}.

    Every raw table is created (empty when not given) so the whole model project runs.
    """
    create_raw_tables(con)
    return {table: insert_records(con, table, records) for table, records in tables.items()}


def erp_raw_rows(records: Mapping[str, list[Mapping[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """ERP record files (type → records) as raw tables of SuiteQL rows."""
    suiteql = build_rows(records)
    raw: dict[str, list[dict[str, Any]]] = {
        "erp_subsidiary": suiteql["subsidiary"],
        "erp_currency": suiteql["currency"],
        "erp_customer": suiteql["customer"],
        "erp_item": suiteql["item"],
        "erp_transaction_line": suiteql["transactionline"],
        "erp_previous_transaction_link": suiteql["previoustransactionlink"],
    }
    for stream in ERP_TRANSACTION_STREAMS.values():
        raw[stream] = []
    for row in suiteql["transaction"]:
        raw[ERP_TRANSACTION_STREAMS[row["type"]]].append(row)
    return raw


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def load_state_dir(con: duckdb.DuckDBPyConnection, state_dir: Path) -> dict[str, int]:
    """Every raw table from a state directory (SOURCES.md layout), as extraction would store it."""
    tables: dict[str, list[Mapping[str, Any]]] = {}
    for table, (relative, _key, _cursor) in {**CRM_STREAMS, **BILLING_STREAMS}.items():
        tables[table] = read_jsonl(state_dir / relative)
    erp_records = {
        name: read_jsonl(state_dir / "erp" / f"{name}.jsonl") for name in ERP_RECORD_FILES
    }
    tables.update(erp_raw_rows(erp_records))
    return load_raw(con, tables)
