"""Exceptions + canonical tables + policy → the correction plan (no Dagster, no writes).

Each auto finding becomes the writes that remove it, in the target's own shape: ERP upserts
by external id (a retry can never create a second record), CRM sObject updates, billing
metadata updates. Whatever cannot be mapped safely stays with a person, with the reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb

from revops_pipelines.corrections import limits
from revops_pipelines.corrections.policy import Policy

OPEN_STATUSES = ("open", "planned")
ACTIVE_SUBSCRIPTION = ("active", "trialing", "past_due")
# Order of record types inside one plan: a record is written after what it refers to.
TYPE_ORDER = {"customer": 0, "invoice": 1, "customerpayment": 2, "Account": 3, "Contract": 3}
ERP_CUSTOMER_FIELDS = {
    "name": "companyName",
    "email": "email",
    "tax_jurisdiction": "custentity_tax_jurisdiction",
}


@dataclass
class Change:
    """One field a correction changes: the value the target holds now, and the one written."""

    field: str
    before: Any
    after: Any


@dataclass
class Action:
    """One write to one record of one target system."""

    target: str
    operation: str  # upsert (create or replace by external id) or update (set fields)
    record_type: str
    external_id: str
    payload: dict[str, Any]
    reason: str  # the exception_id it removes
    amount_minor: int | None = None
    currency: str | None = None
    target_id: str | None = None  # the record's id in the target, for updates
    changes: list[Change] = field(default_factory=list)
    requires: list[tuple[str, str, str]] = field(default_factory=list)  # (target, type, ext id)
    seq: int = 0
    action_id: str = ""
    idempotency_key: str = ""
    prerequisites: list[str] = field(default_factory=list)

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.target, self.record_type, self.external_id)

    def payload_json(self) -> str:
        return limits.canonical_json(self.payload)


@dataclass(frozen=True)
class Held:
    """An open finding the plan does not correct, and why."""

    exception_id: str
    drift_type: str
    reason: str


@dataclass
class Plan:
    plan_id: str
    planned_at: datetime
    actions: list[Action]
    held: list[Held]
    # per target: actions, records that target holds of those types, share of them touched
    radius: dict[str, dict[str, float]]
    over_cap: list[str]

    @property
    def money_minor(self) -> dict[str, int]:
        money: dict[str, int] = {}
        for action in self.actions:
            if action.amount_minor and action.currency:
                money[action.currency] = money.get(action.currency, 0) + int(action.amount_minor)
        return money


def erp_upsert(
    record_type: str,
    payload: dict[str, Any],
    *,
    reason: str,
    amount_minor: int | None = None,
    currency: str | None = None,
    requires: list[tuple[str, str, str]] | None = None,
) -> Action:
    """A new ERP record by its external id (the payload's `externalId`): every field it
    writes goes from nothing to the payload's value."""
    return Action(
        target="erp",
        operation="upsert",
        record_type=record_type,
        external_id=str(payload["externalId"]),
        payload=payload,
        reason=reason,
        amount_minor=amount_minor,
        currency=currency,
        changes=[Change(k, None, v) for k, v in payload.items() if k != "externalId"],
        requires=requires or [],
    )


def _crm_update(
    record_type: str, record_id: str, name: str, before: Any, after: Any, *, reason: str
) -> Action:
    """One field of one CRM record, sent through sObject Collections by its Id."""
    return Action(
        target="crm",
        operation="update",
        record_type=record_type,
        external_id=record_id,
        target_id=record_id,
        payload={"Id": record_id, name: after},
        reason=reason,
        changes=[Change(name, before, after)],
    )


def idempotency_key(target: str, operation: str, external_id: str, payload_json: str) -> str:
    """A hash of what is written: the same correction planned again gets the same key."""
    digest = hashlib.sha256(
        "\n".join((target, operation, external_id, payload_json)).encode()
    ).hexdigest()
    return f"rvp-{digest[:48]}"


def _major(minor: int | None, exponent: int) -> float | int:
    value = int(minor or 0)
    if exponent == 0:
        return value
    return round(value / 10**exponent, exponent)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Iterable[Any] = ()) -> list[dict]:
    cursor = con.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def target_counts(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], int]:
    """Records each target holds now, per record type a plan writes: the cap's denominator."""
    rows = con.execute(
        """
        SELECT 'erp', 'customer', count(*) FROM canonical.customer
            WHERE source_system = 'erp' AND NOT is_deleted
        UNION ALL SELECT 'billing', 'customer', count(*) FROM canonical.customer
            WHERE source_system = 'billing' AND NOT is_deleted
        UNION ALL SELECT 'crm', 'Account', count(*) FROM canonical.customer
            WHERE source_system = 'crm' AND NOT is_deleted
        UNION ALL SELECT 'erp', 'invoice', count(*) FROM canonical.invoice
            WHERE source_system = 'erp'
        UNION ALL SELECT 'erp', 'customerpayment', count(DISTINCT source_id) FROM canonical.payment
            WHERE source_system = 'erp'
        UNION ALL SELECT 'crm', 'Contract', count(DISTINCT contract_id) FROM canonical.contract
            WHERE NOT coalesce(is_deleted, false)
        """
    ).fetchall()
    return {(target, record_type): int(count) for target, record_type, count in rows}


class _Reader:
    """The canonical and staging rows a plan needs, read once."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.customers = {
            (r["source_system"], r["source_id"]): r
            for r in _rows(con, "SELECT * FROM canonical.customer WHERE NOT is_deleted")
        }
        self.erp_customer_by_billing = {
            r["billing_customer_id"]: r
            for (system, _), r in self.customers.items()
            if system == "erp" and r["billing_customer_id"]
        }
        invoices = _rows(con, "SELECT * FROM canonical.invoice")
        self.billing_invoice = {
            r["source_id"]: r for r in invoices if r["source_system"] == "billing"
        }
        self.erp_invoice_refs = {
            r["billing_invoice_id"] for r in invoices if r["source_system"] == "erp"
        }
        self.lines: dict[str, list[dict]] = {}
        for line in _rows(
            con,
            "SELECT * FROM canonical.invoice_line WHERE source_system = 'billing' "
            "ORDER BY invoice_id, line_number",
        ):
            self.lines.setdefault(line["invoice_id"], []).append(line)
        payments = _rows(con, "SELECT * FROM canonical.payment")
        self.billing_payments = {
            r["source_id"]: r for r in payments if r["source_system"] == "billing"
        }
        self.erp_payment_refs = {
            r["billing_payment_id"] for r in payments if r["source_system"] == "erp"
        }
        self.items = dict(
            con.execute(
                "SELECT sku, min(source_id) FROM canonical.product WHERE source_system = 'erp' "
                "AND is_active AND NOT coalesce(is_deleted, false) AND sku IS NOT NULL GROUP BY sku"
            ).fetchall()
        )
        self.currency_ids = dict(
            con.execute(
                "SELECT upper(payload->>'$.symbol'), min(id) FROM raw.erp_currency "
                "WHERE NOT coalesce(deleted, false) GROUP BY 1"
            ).fetchall()
        )
        self.exponents = dict(
            con.execute("SELECT currency, exponent FROM seeds.currency_exponents").fetchall()
        )
        self.contracts = {
            r["source_id"]: r
            for r in _rows(
                con, "SELECT * FROM canonical.contract WHERE NOT coalesce(is_deleted, false)"
            )
        }
        self.counts = target_counts(con)

    def exponent(self, currency: str | None) -> int:
        return int(self.exponents.get((currency or "").upper(), 2))


class Unplannable(Exception):
    """The finding cannot be corrected automatically; the message says why."""


class _Planner:
    def __init__(self, reader: _Reader, policy: Policy) -> None:
        self.r = reader
        self.policy = policy
        self.actions: dict[tuple[str, str, str], Action] = {}

    def add(self, action: Action) -> None:
        # One write per record: a root cause and the findings below it plan the same record once.
        self.actions.setdefault(action.identity, action)

    # -- ERP records, built from billing, the system of record for them

    def erp_customer(self, billing_id: str, crm_id: str | None, reason: str, money: Any) -> None:
        billing = self.r.customers.get(("billing", billing_id))
        if billing is None:
            raise Unplannable(f"billing customer {billing_id} is not in the canonical tables")
        crm = self.r.customers.get(("crm", crm_id)) if crm_id else None
        subsidiary = (crm or {}).get("erp_subsidiary_id") or billing.get("erp_subsidiary_id")
        if not subsidiary:
            entity = (crm or billing).get("legal_entity")
            raise Unplannable(f"legal entity {entity!r} maps to no ERP subsidiary")
        currency = (billing.get("currency") or "").upper()
        currency_id = self.r.currency_ids.get(currency)
        if not currency_id:
            raise Unplannable(f"currency {currency or 'none'} has no ERP currency record")
        payload: dict[str, Any] = {
            "externalId": billing_id,
            "companyName": billing.get("name"),
            "email": billing.get("email"),
            "subsidiary": {"id": str(subsidiary)},
            "currency": {"id": str(currency_id)},
            "custentity_crm_account_id": crm_id or billing.get("crm_account_id"),
            "custentity_tax_jurisdiction": (crm or billing).get("tax_jurisdiction"),
            "isInactive": False,
        }
        payload = {k: v for k, v in payload.items() if v not in (None, "")}
        if not payload.get("companyName"):
            raise Unplannable(f"billing customer {billing_id} has no name")
        self.add(
            erp_upsert(
                "customer", payload, reason=reason, amount_minor=money, currency=currency or None
            )
        )

    def erp_invoice(self, invoice_id: str, reason: str, *, with_payments: bool) -> None:
        invoice = self.r.billing_invoice.get(invoice_id)
        if invoice is None:
            raise Unplannable(f"billing invoice {invoice_id} is not in the canonical tables")
        customer_id = invoice["customer_id"]
        billing = self.r.customers.get(("billing", customer_id)) or {}
        crm = self.r.customers.get(("crm", billing.get("crm_account_id") or ""))
        subsidiary = (crm or {}).get("erp_subsidiary_id") or billing.get("erp_subsidiary_id")
        erp_customer = self.r.erp_customer_by_billing.get(customer_id)
        if erp_customer is not None:
            subsidiary = erp_customer.get("erp_subsidiary_id") or subsidiary
        elif (("erp", "customer", customer_id)) not in self.actions:
            raise Unplannable(f"customer {customer_id} has no ERP customer and none is planned")
        if not subsidiary:
            raise Unplannable(f"customer {customer_id} maps to no ERP subsidiary")
        currency = (invoice.get("currency") or "").upper()
        currency_id = self.r.currency_ids.get(currency)
        if not currency_id:
            raise Unplannable(f"currency {currency or 'none'} has no ERP currency record")
        exponent = self.r.exponent(currency)
        items = []
        for line in self.r.lines.get(invoice_id, []):
            item_id = self.r.items.get(line.get("sku"))
            if item_id is None:
                raise Unplannable(f"SKU {line.get('sku')!r} has no ERP item")
            quantity = line.get("quantity") or 1
            items.append(
                {
                    "item": {"id": str(item_id)},
                    "quantity": quantity,
                    "rate": _major(round(int(line["amount_minor"] or 0) / quantity), exponent),
                    "amount": _major(line["amount_minor"], exponent),
                    "description": line.get("description"),
                }
            )
        finalized = invoice.get("finalized_at") or invoice.get("invoice_date")
        payload: dict[str, Any] = {
            "externalId": invoice_id,
            "tranDate": str(finalized)[:10] if finalized else None,
            "entity": {"externalId": customer_id},
            "subsidiary": {"id": str(subsidiary)},
            "currency": {"id": str(currency_id)},
            "subtotal": _major(invoice.get("subtotal_minor"), exponent),
            "taxTotal": _major(invoice.get("tax_minor"), exponent),
            "total": _major(invoice.get("total_minor"), exponent),
            "item": {"items": items},
            "custbody_billing_subscription_id": invoice.get("subscription_id"),
        }
        if invoice.get("status") == "void":
            payload["status"] = {"id": "voided", "refName": "Voided"}
        payload = {k: v for k, v in payload.items() if v is not None}
        customer = ("erp", "customer", customer_id)
        self.add(
            erp_upsert(
                "invoice",
                payload,
                reason=reason,
                amount_minor=invoice.get("total_minor"),
                currency=currency,
                requires=[customer] if customer in self.actions else [],
            )
        )
        if with_payments:
            for payment in sorted(self.r.billing_payments.values(), key=lambda p: p["source_id"]):
                if (
                    payment.get("invoice_id") == invoice_id
                    and payment["source_id"] not in self.r.erp_payment_refs
                    and payment.get("status") == "paid"
                    and int(payment.get("amount_minor") or 0) > 0
                ):
                    self.erp_payment(payment["source_id"], reason)

    def erp_payment(self, payment_id: str, reason: str) -> None:
        payment = self.r.billing_payments.get(payment_id)
        if payment is None:
            raise Unplannable(f"billing payment {payment_id} is not in the canonical tables")
        invoice_id = payment.get("invoice_id")
        invoice_planned = ("erp", "invoice", invoice_id) in self.actions
        if invoice_id not in self.r.erp_invoice_refs and not invoice_planned:
            raise Unplannable(f"invoice {invoice_id} is not in the ERP and not planned")
        invoice = self.r.billing_invoice.get(invoice_id) or {}
        customer_id = payment.get("customer_id") or invoice.get("customer_id")
        currency = (payment.get("currency") or "").upper()
        currency_id = self.r.currency_ids.get(currency)
        if not currency_id:
            raise Unplannable(f"currency {currency or 'none'} has no ERP currency record")
        amount = _major(payment.get("amount_minor"), self.r.exponent(currency))
        paid_at = payment.get("paid_at")
        payload: dict[str, Any] = {
            "externalId": payment_id,
            "tranDate": str(paid_at)[:10] if paid_at else None,
            "customer": {"externalId": customer_id},
            "currency": {"id": str(currency_id)},
            "payment": amount,
            "apply": {
                "items": [{"doc": {"externalId": invoice_id}, "apply": True, "amount": amount}]
            },
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        self.add(
            erp_upsert(
                "customerpayment",
                payload,
                reason=reason,
                amount_minor=payment.get("amount_minor"),
                currency=currency,
                requires=[("erp", "invoice", invoice_id)] if invoice_planned else [],
            )
        )

    # -- field updates

    def erp_customer_field(self, finding: dict[str, Any]) -> None:
        name = finding["field"]
        erp_field = ERP_CUSTOMER_FIELDS.get(name)
        if erp_field is None:
            raise Unplannable(f"an ERP customer's {name} is not changed by a correction")
        owner = self.policy.owner("customer", name)
        if owner == "erp":
            raise Unplannable(f"the ERP is the system of record for {name}")
        expected = finding.get("expected")
        if expected in (None, ""):
            raise Unplannable("the system of record holds no value: never write empty over one")
        erp_id = finding.get("erp_id")
        erp = self.r.customers.get(("erp", erp_id or ""))
        if erp is None:
            raise Unplannable(f"ERP customer {erp_id} is not in the canonical tables")
        external_id = erp.get("billing_customer_id") or erp_id
        self.add(
            Action(
                target="erp",
                operation="update",
                record_type="customer",
                external_id=external_id,
                target_id=erp_id,
                payload={erp_field: expected},
                reason=finding["exception_id"],
                changes=[Change(erp_field, finding.get("actual"), expected)],
            )
        )

    def link(self, finding: dict[str, Any]) -> None:
        crm_id, billing_id = finding.get("crm_id"), finding.get("billing_id")
        if not crm_id or not billing_id:
            raise Unplannable("a link needs both the CRM account and the billing customer")
        crm = self.r.customers.get(("crm", crm_id))
        billing = self.r.customers.get(("billing", billing_id))
        if crm is None or billing is None:
            raise Unplannable("a linked record is not in the canonical tables")
        if not billing.get("crm_account_id"):
            self.add(
                Action(
                    target="billing",
                    operation="update",
                    record_type="customer",
                    external_id=billing_id,
                    target_id=billing_id,
                    payload={"metadata": {"crm_account_id": crm_id}},
                    reason=finding["exception_id"],
                    changes=[Change("metadata.crm_account_id", None, crm_id)],
                )
            )
        elif billing["crm_account_id"] != crm_id:
            raise Unplannable(f"billing customer {billing_id} links another CRM account")
        if not crm.get("billing_customer_id"):
            self.add(
                _crm_update(
                    "Account",
                    crm_id,
                    "Billing_Customer_Id__c",
                    None,
                    billing_id,
                    reason=finding["exception_id"],
                )  # fmt: skip
            )
        elif crm["billing_customer_id"] != billing_id:
            raise Unplannable(f"CRM account {crm_id} links another billing customer")

    def contract_status(self, finding: dict[str, Any]) -> None:
        opportunity = self.r.contracts.get(finding.get("crm_id") or "")
        if opportunity is None or not opportunity.get("contract_id"):
            raise Unplannable("the opportunity has no CRM contract to update")
        status = (finding.get("expected") or "").lower()
        if not status:
            raise Unplannable("the billing subscription has no status")
        wanted = "Activated" if status in ACTIVE_SUBSCRIPTION else "Terminated"
        current = opportunity.get("contract_status")
        if (current or "").lower() == wanted.lower():
            raise Unplannable(f"the CRM contract is already {wanted}")
        contract_id = opportunity["contract_id"]
        self.add(
            _crm_update(
                "Contract", contract_id, "Status", current, wanted, reason=finding["exception_id"]
            )
        )

    def void_erp_invoice(self, finding: dict[str, Any]) -> None:
        """A void billing invoice voids its open ERP copy: totals stay, nothing else changes."""
        if (finding.get("expected"), finding.get("actual")) != ("void", "open"):
            raise Unplannable(
                "only a voided billing invoice is carried to the ERP; a paid one is settled "
                "by posting its payment, never by editing the posted invoice"
            )
        erp_id = finding.get("erp_id")
        if not erp_id:
            raise Unplannable("the ERP invoice has no id")
        self.add(
            Action(
                target="erp",
                operation="update",
                record_type="invoice",
                external_id=finding["billing_id"],
                target_id=erp_id,
                payload={"status": {"id": "voided"}},
                reason=finding["exception_id"],
                changes=[Change("status", "open", "voided")],
            )
        )

    def plan(self, finding: dict[str, Any]) -> None:
        code = finding["drift_type"]
        reason = finding["exception_id"]
        if code == "customer_missing_in_erp":
            billing_id = finding["billing_id"]
            self.erp_customer(
                billing_id, finding.get("crm_id"), reason, finding.get("amount_impact_minor")
            )
            for invoice in sorted(self.r.billing_invoice.values(), key=lambda i: i["source_id"]):
                if (
                    invoice["customer_id"] == billing_id
                    and invoice.get("finalized_at") is not None
                    and invoice.get("status") != "draft"
                    and invoice["source_id"] not in self.r.erp_invoice_refs
                ):
                    self.erp_invoice(invoice["source_id"], reason, with_payments=True)
        elif code == "invoice_missing_in_erp":
            self.erp_invoice(finding["billing_id"], reason, with_payments=True)
        elif code == "payment_missing_in_erp":
            self.erp_payment(finding["billing_id"], reason)
        elif code == "customer_attribute_mismatch":
            if finding.get("action") != "auto":
                raise Unplannable("the CRM or billing differs from its system of record")
            self.erp_customer_field(finding)
        elif code == "unlinked_match":
            self.link(finding)
        elif code == "subscription_status_mismatch":
            self.contract_status(finding)
        elif code == "invoice_status_mismatch":
            self.void_erp_invoice(finding)
        else:
            raise Unplannable(f"{code} has no automatic correction")


def finish(actions: list[Action]) -> list[Action]:
    """Order, ids, keys and prerequisites; validated against the target's limits."""
    actions.sort(key=lambda a: (TYPE_ORDER.get(a.record_type, 9), a.target, a.external_id))
    ids: dict[tuple[str, str, str], str] = {}
    for seq, action in enumerate(actions, start=1):
        action.seq = seq
        action.idempotency_key = idempotency_key(
            action.target, action.operation, action.external_id, action.payload_json()
        )
        action.action_id = hashlib.sha256(action.idempotency_key.encode()).hexdigest()[:16]
        ids[action.identity] = action.action_id
    for action in actions:
        action.prerequisites = [ids[r] for r in action.requires if r in ids]
    return actions


def read_findings(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return _rows(
        con,
        "SELECT * FROM reconciliation.drift_exceptions WHERE status IN ('open', 'planned') "
        "ORDER BY exception_id",
    )


def build_plan(
    con: duckdb.DuckDBPyConnection,
    policy: Policy,
    *,
    now: datetime | None = None,
    findings: list[dict[str, Any]] | None = None,
) -> Plan:
    """The plan for the open findings in `con`; reads only."""
    reader = _Reader(con)
    planner = _Planner(reader, policy)
    held: list[Held] = []
    findings = read_findings(con) if findings is None else findings
    # Root causes first, so the findings below them find their records already planned.
    rank = {"customer_missing_in_erp": 0, "invoice_missing_in_erp": 1, "payment_missing_in_erp": 2}
    for finding in sorted(
        findings, key=lambda f: (rank.get(f["drift_type"], 3), f["exception_id"])
    ):
        if policy.action(finding["drift_type"]) != "auto":
            if finding.get("action") == "auto":
                held.append(Held(finding["exception_id"], finding["drift_type"], "policy: review"))
            continue
        before = dict(planner.actions)
        try:
            planner.plan(finding)
        except Unplannable as why:
            planner.actions = before
            held.append(Held(finding["exception_id"], finding["drift_type"], str(why)))
    actions: list[Action] = []
    for action in planner.actions.values():
        problem = limits.check(
            action.target,
            action.external_id,
            action.payload,
            idempotency_key(
                action.target, action.operation, action.external_id, action.payload_json()
            ),
        )
        if problem:
            held.append(Held(action.reason, "", f"{action.target} would refuse: {problem}"))
        else:
            actions.append(action)
    actions = finish(actions)
    plan_id = hashlib.sha256("\n".join(a.idempotency_key for a in actions).encode()).hexdigest()[
        :16
    ]
    radius, over = blast_radius([(a.target, a.record_type) for a in actions], reader.counts, policy)
    return Plan(
        plan_id=plan_id,
        planned_at=(now or datetime.now(UTC)).astimezone(UTC),
        actions=actions,
        held=held,
        radius=radius,
        over_cap=over,
    )


def blast_radius(
    writes: Iterable[tuple[str, str]], counts: dict[tuple[str, str], int], policy: Policy
) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Per target and record type: actions, records held there now, share touched."""
    radius: dict[str, dict[str, float]] = {}
    for target, record_type in writes:
        key = f"{target}/{record_type}"
        entry = radius.setdefault(
            key, {"actions": 0, "records": counts.get((target, record_type), 0)}
        )
        entry["actions"] += 1
    over = []
    for key, entry in sorted(radius.items()):
        entry["share"] = round(entry["actions"] / max(1, entry["records"]), 4)
        if entry["actions"] > policy.max_actions or entry["share"] > policy.max_share:
            over.append(
                f"{key}: {int(entry['actions'])} actions, {entry['share']:.0%} of "
                f"{int(entry['records'])} records (cap {policy.max_actions}, "
                f"{policy.max_share:.0%})"
            )
    return radius, over


def plan_rows(plan: Plan) -> list[dict[str, Any]]:
    """`corrections.correction_plan` rows, as DRIFT.md names the columns."""
    return [
        {
            "plan_id": plan.plan_id,
            "action_id": a.action_id,
            "seq": a.seq,
            "prerequisites": json.dumps(a.prerequisites),
            "target": a.target,
            "operation": a.operation,
            "record_type": a.record_type,
            "external_id": a.external_id,
            "target_id": a.target_id,
            "payload": a.payload_json(),
            "idempotency_key": a.idempotency_key,
            "reason": a.reason,
            "amount_minor": a.amount_minor,
            "currency": a.currency,
            "changes": json.dumps(
                [{"field": c.field, "before": c.before, "after": c.after} for c in a.changes],
                default=str,
            ),
            "planned_at": plan.planned_at,
        }
        for a in plan.actions
    ]
