"""Any mix of the fields the real APIs may leave null (docs/NULLABILITY.md) set to null in the
hand-written state: every canonical table still passes its pandera model and reconciliation
reports nothing, since none of these nulls is drift. (A value the system of record holds and
another system lacks is drift, DRIFT.md; such a null is set where the value comes from and in
the systems that copy it.)"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import duckdb
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from revops_pipelines.reconciliation.run import now_for, reconciliation_vars
from revops_pipelines.sandbox.raw_tables import (
    BILLING_STREAMS,
    CRM_STREAMS,
    ERP_RECORD_FILES,
    erp_raw_rows,
    load_raw,
    read_jsonl,
)
from revops_pipelines.schemas import CANONICAL_SCHEMAS, validate_table
from revops_pipelines.sqlmodels import load_models, run_models
from revops_pipelines_tests.conftest import HANDWRITTEN_STATE

Record = dict[str, Any]
Change = Callable[[Record, dict[str, list[Record]]], None]
STATE: dict[str, list[Record]] = {
    relative.removesuffix(".jsonl"): read_jsonl(HANDWRITTEN_STATE / relative)
    for relative, _key, _cursor in {**CRM_STREAMS, **BILLING_STREAMS}.values()
}
STATE.update(
    {f"erp/{n}": read_jsonl(HANDWRITTEN_STATE / "erp" / f"{n}.jsonl") for n in ERP_RECORD_FILES}
)
MODELS = load_models()


def _set(path: str, value: object = None) -> Change:
    *parents, last = path.split(".")

    def change(record: Record, _state: dict[str, list[Record]]) -> None:
        target = record
        for key in parents:
            target = target.get(key) or {}
        if isinstance(target, dict):
            target[last] = value

    return change


def _each_line(change: Change) -> Change:
    def apply(invoice: Record, state: dict[str, list[Record]]) -> None:
        for line in invoice["lines"]["data"]:
            change(line, state)

    return apply


def _not_won(change: Change) -> Change:
    def apply(opportunity: Record, state: dict[str, list[Record]]) -> None:
        if not opportunity["IsWon"]:
            change(opportunity, state)

    return apply


def _no_email(customer: Record, state: dict[str, list[Record]]) -> None:
    """No email in billing, and so none in the ERP customer made from it."""
    customer["email"] = None
    for erp in state["erp/customer"]:
        if erp["externalId"] == customer["id"]:
            erp["email"] = None


def _no_address(customer: Record, state: dict[str, list[Record]]) -> None:
    """No address in billing nor on the CRM account it came from."""
    customer["address"] = None
    for account in state["crm/Account"]:
        if account["Id"] == customer["metadata"].get("crm_account_id"):
            for field in ("Street", "City", "State", "PostalCode", "Country"):
                account[f"Billing{field}"] = None


# (state file, what the real API may leave null or absent)
NULLABLE: list[tuple[str, str, Change]] = [
    ("billing/customers", "email (and so the ERP's)", _no_email),
    ("billing/customers", "address (and the CRM account's)", _no_address),
    ("billing/customers", "address.line1", _set("address.line1")),
    ("billing/customers", "address.postal_code", _set("address.postal_code")),
    ("billing/invoices", "metadata", _set("metadata")),
    ("billing/invoices", "parent metadata", _set("parent.subscription_details.metadata", {})),
    ("billing/invoices", "line description", _each_line(_set("description"))),
    ("billing/invoices", "line quantity", _each_line(_set("quantity"))),
    ("billing/subscriptions", "metadata", _set("metadata", {})),
    ("billing/credit_notes", "reason", _set("reason")),
    ("billing/products", "updated", _set("updated")),
    ("crm/Account", "BillingStreet", _set("BillingStreet")),
    ("crm/Account", "BillingCity", _set("BillingCity")),
    ("crm/Account", "BillingState", _set("BillingState")),
    ("crm/Account", "BillingPostalCode", _set("BillingPostalCode")),
    ("crm/Opportunity", "Type", _set("Type")),
    ("crm/Opportunity", "Amount (not won)", _not_won(_set("Amount"))),
    ("crm/Product2", "Family", _set("Family")),
    ("erp/item", "displayName", _set("displayName")),
    ("erp/invoice", "custbody_billing_subscription_id", _set("custbody_billing_subscription_id")),
]


def _canceled_attempt(state: dict[str, list[Record]], mask: int) -> None:
    """A failed payment attempt beside the one that paid: canceled, amount_paid null."""
    payments = state["billing/invoice_payments"]
    for i, paid in enumerate(list(payments)):
        if mask >> i & 1:
            attempt = copy.deepcopy(paid)
            attempt.update(
                id=f"{paid['id']}x", status="canceled", amount_paid=None, is_default=False
            )
            attempt["status_transitions"] = {"paid_at": None, "canceled_at": paid["created"] + 60}
            payments.append(attempt)


def _reconcile(state: dict[str, list[Record]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    tables: dict[str, list[Record]] = {
        table: state[relative.removesuffix(".jsonl")]
        for table, (relative, _key, _cursor) in {**CRM_STREAMS, **BILLING_STREAMS}.items()
    }
    tables.update(erp_raw_rows({n: state[f"erp/{n}"] for n in ERP_RECORD_FILES}))
    load_raw(con, tables)
    run_models(con, MODELS, vars=reconciliation_vars(now=now_for("2025-06-28")))
    return con


# Each example runs the whole model project; shrinking is left out to keep the test bounded
# (a failing example is printed as drawn).
@settings(
    max_examples=3,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@example(changes=[(i, 2**8 - 1) for i in range(len(NULLABLE))], attempts=2**5 - 1)
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(range(len(NULLABLE))), st.integers(1, 2**8 - 1)),
        min_size=1,
        max_size=len(NULLABLE),
    ),
    attempts=st.integers(0, 2**5 - 1),
)
def test_any_mix_of_api_nulls_is_valid_and_no_drift(changes: list[tuple[int, int]], attempts: int):
    state = copy.deepcopy(STATE)
    for index, mask in changes:
        file, _what, change = NULLABLE[index]
        for i, record in enumerate(state[file]):
            if mask >> (i % 8) & 1:
                change(record, state)
    _canceled_attempt(state, attempts)
    con = _reconcile(state)
    for table in CANONICAL_SCHEMAS:
        result = validate_table(con, table)
        assert result.passed, (table, result.sample_markdown)
    findings = con.execute(
        "SELECT drift_type, crm_id, billing_id, erp_id, field FROM reconciliation.findings"
    ).fetchall()
    assert findings == []
    issues = con.execute("SELECT rule, source_id FROM canonical.validation_issue").fetchall()
    assert issues == []


def test_every_nullable_field_is_in_the_state() -> None:
    """Each entry changes something in the hand-written state, so the property test can fail."""
    for file, what, change in NULLABLE:
        state = copy.deepcopy(STATE)
        for record in state[file]:
            change(record, state)
        assert state != STATE, (file, what)
