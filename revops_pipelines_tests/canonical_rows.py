"""Canonical tables built by hand in a DuckDB connection, with the columns of docs/DATA_MODEL.md.

Reconciliation tests describe a case as a few rows; every column a row leaves out
gets a sensible default so a test states only what matters to it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import duckdb

from revops_pipelines.reconciliation.run import now_for, reconciliation_vars, run_reconciliation
from revops_pipelines.sqlmodels import normalize_text_value

MONEY = "BIGINT"
TS = "TIMESTAMPTZ"
DEC = "DECIMAL(24,6)"

CANONICAL_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "customer": [
        ("source_system", "VARCHAR"),
        ("source_id", "VARCHAR"),
        ("crm_account_id", "VARCHAR"),
        ("billing_customer_id", "VARCHAR"),
        ("erp_customer_id", "VARCHAR"),
        ("name", "VARCHAR"),
        ("name_norm", "VARCHAR"),
        ("email", "VARCHAR"),
        ("email_norm", "VARCHAR"),
        ("country", "VARCHAR"),
        ("currency", "VARCHAR"),
        ("legal_entity", "VARCHAR"),
        ("tax_jurisdiction", "VARCHAR"),
        ("erp_subsidiary_id", "VARCHAR"),
        ("parent_id", "VARCHAR"),
        ("is_deleted", "BOOLEAN"),
        ("is_active", "BOOLEAN"),
        ("created_at", TS),
        ("updated_at", TS),
    ],
    "product": [
        ("source_system", "VARCHAR"),
        ("source_id", "VARCHAR"),
        ("sku", "VARCHAR"),
        ("name", "VARCHAR"),
        ("is_active", "BOOLEAN"),
        ("is_deleted", "BOOLEAN"),
        ("billing_product_id", "VARCHAR"),
    ],
    "contract": [
        ("source_system", "VARCHAR"),
        ("source_id", "VARCHAR"),
        ("account_id", "VARCHAR"),
        ("opportunity_name", "VARCHAR"),
        ("stage", "VARCHAR"),
        ("is_closed", "BOOLEAN"),
        ("is_won", "BOOLEAN"),
        ("close_date", "DATE"),
        ("amount_minor", MONEY),
        ("currency", "VARCHAR"),
        ("term_months", "INTEGER"),
        ("mrr_minor", DEC),
        ("billing_subscription_id", "VARCHAR"),
        ("contract_id", "VARCHAR"),
        ("contract_status", "VARCHAR"),
        ("start_date", "DATE"),
        ("end_date", "DATE"),
        ("is_deleted", "BOOLEAN"),
    ],
    "contract_line": [
        ("source_system", "VARCHAR"),
        ("source_id", "VARCHAR"),
        ("opportunity_id", "VARCHAR"),
        ("product_id", "VARCHAR"),
        ("sku", "VARCHAR"),
        ("quantity", "DOUBLE"),
        ("unit_price_minor", MONEY),
        ("total_price_minor", MONEY),
        ("currency", "VARCHAR"),
        ("is_deleted", "BOOLEAN"),
    ],
    "subscription": [
        ("source_system", "VARCHAR"),
        ("source_id", "VARCHAR"),
        ("customer_id", "VARCHAR"),
        ("crm_opportunity_id", "VARCHAR"),
        ("status", "VARCHAR"),
        ("currency", "VARCHAR"),
        ("created_at", TS),
        ("start_date", TS),
        ("canceled_at", TS),
        ("ended_at", TS),
        ("cancel_at_period_end", "BOOLEAN"),
        ("mrr_minor", DEC),
    ],
    "subscription_item": [
        ("source_system", "VARCHAR"),
        ("source_id", "VARCHAR"),
        ("subscription_id", "VARCHAR"),
        ("price_id", "VARCHAR"),
        ("product_id", "VARCHAR"),
        ("sku", "VARCHAR"),
        ("quantity", "BIGINT"),
        ("unit_amount_minor", MONEY),
        ("interval", "VARCHAR"),
        ("interval_count", "INTEGER"),
        ("monthly_amount_minor", DEC),
        ("currency", "VARCHAR"),
        ("current_period_start", TS),
        ("current_period_end", TS),
    ],
    "invoice": [
        ("source_system", "VARCHAR"),
        ("source_id", "VARCHAR"),
        ("billing_invoice_id", "VARCHAR"),
        ("customer_id", "VARCHAR"),
        ("billing_customer_id", "VARCHAR"),
        ("subscription_id", "VARCHAR"),
        ("number", "VARCHAR"),
        ("status", "VARCHAR"),
        ("status_raw", "VARCHAR"),
        ("currency", "VARCHAR"),
        ("subtotal_minor", MONEY),
        ("tax_minor", MONEY),
        ("total_minor", MONEY),
        ("amount_remaining_minor", MONEY),
        ("invoice_date", "DATE"),
        ("period_start", TS),
        ("period_end", TS),
        ("finalized_at", TS),
        ("paid_at", TS),
        ("is_finalized", "BOOLEAN"),
        ("created_at", TS),
        ("updated_at", TS),
    ],
    "invoice_line": [
        ("source_system", "VARCHAR"),
        ("source_id", "VARCHAR"),
        ("invoice_id", "VARCHAR"),
        ("line_number", "INTEGER"),
        ("product_id", "VARCHAR"),
        ("sku", "VARCHAR"),
        ("description", "VARCHAR"),
        ("quantity", "DOUBLE"),
        ("amount_minor", MONEY),
        ("currency", "VARCHAR"),
        ("period_start", TS),
        ("period_end", TS),
    ],
    "payment": [
        ("source_system", "VARCHAR"),
        ("source_id", "VARCHAR"),
        ("billing_payment_id", "VARCHAR"),
        ("invoice_id", "VARCHAR"),
        ("billing_invoice_id", "VARCHAR"),
        ("customer_id", "VARCHAR"),
        ("amount_minor", MONEY),
        ("currency", "VARCHAR"),
        ("status", "VARCHAR"),
        ("paid_at", TS),
    ],
    "credit_note": [
        ("source_system", "VARCHAR"),
        ("source_id", "VARCHAR"),
        ("billing_credit_note_id", "VARCHAR"),
        ("invoice_id", "VARCHAR"),
        ("customer_id", "VARCHAR"),
        ("total_minor", MONEY),
        ("currency", "VARCHAR"),
        ("status", "VARCHAR"),
        ("created_at", TS),
    ],
    "revenue_event": [
        ("source_system", "VARCHAR"),
        ("invoice_id", "VARCHAR"),
        ("invoice_line_id", "VARCHAR"),
        ("month", "DATE"),
        ("amount_minor", MONEY),
        ("currency", "VARCHAR"),
    ],
    "customer_xref": [
        ("xref_id", "VARCHAR"),
        ("crm_account_id", "VARCHAR"),
        ("billing_customer_id", "VARCHAR"),
        ("erp_customer_id", "VARCHAR"),
        ("link_method", "VARCHAR"),
    ],
    "legal_entity_subsidiary": [
        ("subsidiary_id", "VARCHAR"),
        ("legal_entity", "VARCHAR"),
        ("origin", "VARCHAR"),
    ],
    "lifecycle_event": [
        ("correlation_id", "VARCHAR"),
        ("stage", "VARCHAR"),
        ("system", "VARCHAR"),
        ("record_id", "VARCHAR"),
        ("occurred_at", TS),
    ],
}

T0 = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)

DEFAULTS: dict[str, dict[str, Any]] = {
    "customer": {
        "currency": "USD",
        "country": "US",
        "is_deleted": False,
        "is_active": True,
        "created_at": T0,
        "updated_at": T0,
    },
    "product": {"is_active": True, "is_deleted": False},
    "contract": {
        "source_system": "crm",
        "stage": "Closed Won",
        "is_closed": True,
        "is_won": True,
        "currency": "USD",
        "term_months": 12,
        "is_deleted": False,
    },
    "contract_line": {"source_system": "crm", "is_deleted": False, "currency": "USD"},
    "subscription": {
        "source_system": "billing",
        "status": "active",
        "currency": "USD",
        "created_at": T0,
        "start_date": T0,
        "cancel_at_period_end": False,
    },
    "subscription_item": {
        "source_system": "billing",
        "quantity": 1,
        "interval": "month",
        "interval_count": 1,
        "currency": "USD",
    },
    "invoice": {
        "currency": "USD",
        "tax_minor": 0,
        "amount_remaining_minor": 0,
        "created_at": T0,
        "updated_at": T0,
    },
    "invoice_line": {"currency": "USD", "line_number": 1, "quantity": 1},
    "payment": {"currency": "USD", "status": "paid", "paid_at": T0},
    "legal_entity_subsidiary": {"origin": "erp"},
}


def _derived(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """Fill the columns that follow from others, as the canonical models do."""
    if table == "customer":
        system, source_id = row.get("source_system"), row.get("source_id")
        own = {"crm": "crm_account_id", "billing": "billing_customer_id", "erp": "erp_customer_id"}
        if system in own:
            row.setdefault(own[system], source_id)
        if row.get("name") is not None:
            row.setdefault("name_norm", normalize_text_value(row["name"]))
        if row.get("email") is not None:
            row.setdefault("email_norm", normalize_text_value(row["email"]))
    if table == "contract":
        amount, term = row.get("amount_minor"), row.get("term_months")
        if amount is not None and term:
            row.setdefault("mrr_minor", amount / term)
        row.setdefault("close_date", T0.date())
    if table == "subscription_item" and row.get("unit_amount_minor") is not None:
        months = {"month": 1, "year": 12, "week": 12 / 52, "day": 12 / 365}
        per = months[row.get("interval", "month")] * (row.get("interval_count") or 1)
        row.setdefault(
            "monthly_amount_minor", row["unit_amount_minor"] * (row.get("quantity") or 1) / per
        )
    if table == "invoice":
        total = row.get("total_minor")
        if total is not None:
            row.setdefault("subtotal_minor", total - (row.get("tax_minor") or 0))
        if row.get("source_system") == "billing":
            row.setdefault("billing_invoice_id", row.get("source_id"))
            row.setdefault("billing_customer_id", row.get("customer_id"))
        status = row.get("status")
        finalized = status not in (None, "draft")
        row.setdefault("is_finalized", finalized)
        row.setdefault("finalized_at", T0 if finalized else None)
        row.setdefault("status_raw", status)
    if table == "payment" and row.get("source_system") == "billing":
        row.setdefault("billing_payment_id", row.get("source_id"))
        row.setdefault("billing_invoice_id", row.get("invoice_id"))
    return row


def create_canonical(con: duckdb.DuckDBPyConnection) -> None:
    """Create every canonical table, empty, in schema `canonical`."""
    con.execute("CREATE SCHEMA IF NOT EXISTS canonical")
    for table, columns in CANONICAL_COLUMNS.items():
        cols = ", ".join(f"{name} {kind}" for name, kind in columns)
        con.execute(f"CREATE OR REPLACE TABLE canonical.{table} ({cols})")


def insert_rows(
    con: duckdb.DuckDBPyConnection, table: str, rows: Iterable[Mapping[str, Any]]
) -> None:
    """Insert rows into `canonical.<table>`; unknown columns are a mistake in the test."""
    columns = [name for name, _ in CANONICAL_COLUMNS[table]]
    values = []
    for given in rows:
        unknown = set(given) - set(columns)
        if unknown:
            raise KeyError(f"canonical.{table} has no column(s) {sorted(unknown)}")
        row = {**DEFAULTS.get(table, {}), **given}
        row = _derived(table, row)
        values.append([row.get(name) for name in columns])
    if not values:
        return
    marks = ", ".join("?" for _ in columns)
    con.executemany(f"INSERT INTO canonical.{table} VALUES ({marks})", values)


def build_canonical(
    con: duckdb.DuckDBPyConnection, tables: Mapping[str, Iterable[Mapping[str, Any]]]
) -> None:
    """Create all canonical tables and fill the named ones."""
    create_canonical(con)
    for table, rows in tables.items():
        insert_rows(con, table, rows)
    # As canonical/subscription.sql does: a subscription's MRR is the sum of its items.
    con.execute(
        """
        UPDATE canonical.subscription AS s SET mrr_minor = coalesce((
            SELECT sum(i.monthly_amount_minor) FROM canonical.subscription_item AS i
            WHERE i.subscription_id = s.source_id
        ), 0)
        WHERE s.mrr_minor IS NULL
        """
    )


# A small, clean three-system world: each drift test changes one thing in it and expects
# exactly one finding.
AS_OF = "2025-06-28"

CLEAN: dict[str, list[dict[str, Any]]] = {
    "customer": [
        {
            "source_system": "crm",
            "source_id": "001A",
            "billing_customer_id": "cus_A",
            "name": "Acme Corp",
            "country": "US",
            "currency": "USD",
            "legal_entity": "US01",
            "tax_jurisdiction": "US-CA",
        },
        {
            "source_system": "billing",
            "source_id": "cus_A",
            "crm_account_id": "001A",
            "name": "Acme Corp",
            "email": "ap@acme.example",
            "country": "US",
            "currency": "USD",
            "legal_entity": "US01",
        },
        {
            "source_system": "erp",
            "source_id": "1234",
            "billing_customer_id": "cus_A",
            "crm_account_id": "001A",
            "name": "Acme Corp",
            "email": "ap@acme.example",
            "currency": "USD",
            "legal_entity": "US01",
            "tax_jurisdiction": "US-CA",
            "erp_subsidiary_id": "1",
        },
    ],
    "legal_entity_subsidiary": [
        {"subsidiary_id": "1", "legal_entity": "US01"},
        {"subsidiary_id": "3", "legal_entity": "DE01"},
    ],
    "product": [
        {"source_system": "crm", "source_id": "01tP", "sku": "PRO-M", "name": "Pro"},
        {"source_system": "billing", "source_id": "prod_P", "sku": "PRO-M", "name": "Pro"},
        {"source_system": "erp", "source_id": "77", "sku": "PRO-M", "name": "Pro"},
    ],
    "contract": [
        {
            "source_id": "006O",
            "account_id": "001A",
            "close_date": date(2025, 1, 10),
            "amount_minor": 1_200_000,
            "term_months": 12,
            "billing_subscription_id": "sub_S",
            "contract_id": "800C",
            "contract_status": "Activated",
        }
    ],
    "contract_line": [{"source_id": "00kL", "opportunity_id": "006O", "sku": "PRO-M"}],
    "subscription": [{"source_id": "sub_S", "customer_id": "cus_A", "crm_opportunity_id": "006O"}],
    "subscription_item": [
        {
            "source_id": "si_S",
            "subscription_id": "sub_S",
            "sku": "PRO-M",
            "quantity": 10,
            "unit_amount_minor": 10_000,
        }
    ],
    "invoice": [
        {
            "source_system": "billing",
            "source_id": "in_I",
            "customer_id": "cus_A",
            "subscription_id": "sub_S",
            "status": "paid",
            "total_minor": 100_000,
            "tax_minor": 8_000,
        },
        {
            "source_system": "erp",
            "source_id": "5001",
            "billing_invoice_id": "in_I",
            "customer_id": "1234",
            "status": "paid",
            "total_minor": 100_000,
            "tax_minor": 8_000,
        },
    ],
    "invoice_line": [
        {"source_system": "billing", "source_id": "il_I", "invoice_id": "in_I", "sku": "PRO-M"}
    ],
    "payment": [
        {
            "source_system": "billing",
            "source_id": "inpay_P",
            "invoice_id": "in_I",
            "customer_id": "cus_A",
            "amount_minor": 100_000,
        },
        {
            "source_system": "erp",
            "source_id": "6001",
            "billing_payment_id": "inpay_P",
            "invoice_id": "5001",
            "customer_id": "1234",
            "amount_minor": 100_000,
        },
    ],
}


def clean_world() -> dict[str, list[dict[str, Any]]]:
    return copy.deepcopy(CLEAN)


def row(world: dict[str, list[dict[str, Any]]], table: str, source_id: str) -> dict[str, Any]:
    """The row of `table` with this source id (to change it in place)."""
    for candidate in world[table]:
        if candidate["source_id"] == source_id:
            return candidate
    raise KeyError(f"{table} has no row {source_id}")


def reconcile_world(
    world: dict[str, list[dict[str, Any]]],
    *,
    con: duckdb.DuckDBPyConnection | None = None,
    as_of: str = AS_OF,
    tolerances: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Builds the canonical tables, runs the reconciliation models, returns the findings."""
    con = con or duckdb.connect()
    build_canonical(con, world)
    run_reconciliation(con, vars=reconciliation_vars(now=now_for(as_of), tolerances=tolerances))
    cursor = con.execute("SELECT * FROM reconciliation.findings ORDER BY drift_type, exception_id")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def codes(findings: list[dict[str, Any]]) -> list[str]:
    return sorted(f["drift_type"] for f in findings)
