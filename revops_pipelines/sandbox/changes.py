"""Scripted changes: what people do in the three systems between two reconciliations.

Each change commits to the state store's journal as the APIs do (so it is durable, shows up
in the change cursors and `/v1/events`, and is delivered as a webhook) and returns the
records it touched. `revops sandbox change NAME` and `POST /_sandbox/changes/NAME` run them.
"""

from __future__ import annotations

import copy
import secrets
import string
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from revops_pipelines.sandbox.billing import event_write
from revops_pipelines.sandbox.crm import API, salesforce_id, sf_datetime
from revops_pipelines.sandbox.state import StateStore

Touched = dict[str, str]


class ChangeError(Exception):
    """The state holds nothing this change can act on; the message says what is missing."""


def _stripe_id(prefix: str) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(14))


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def win_opportunity(store: StateStore) -> list[Touched]:
    """The first open opportunity is won; with none open, a new won one joins its account."""
    opportunities = store.collection("crm", "Opportunity")
    stamp = sf_datetime(_now())
    live = [o for o in opportunities if not o.get("IsDeleted")]
    chosen = next((o for o in sorted(live, key=lambda o: o["Id"]) if not o.get("IsClosed")), None)
    if chosen is not None:
        won = {**chosen, "StageName": "Closed Won", "IsClosed": True, "IsWon": True}
    else:
        if not live:
            raise ChangeError("no opportunity in crm/Opportunity.jsonl to base a new one on")
        template = live[0]
        number = 900_000 + len(opportunities)
        while opportunities.get(new_id := salesforce_id("006", number)) is not None:
            number += 1
        won = {
            **copy.deepcopy(template),
            "Id": new_id,
            "attributes": {"type": "Opportunity", "url": f"{API}/sobjects/Opportunity/{new_id}"},
            "Name": f"{template.get('Name', 'Opportunity')} - expansion",
            "StageName": "Closed Won",
            "IsClosed": True,
            "IsWon": True,
            "Type": "Expansion",
            "Billing_Subscription_Id__c": None,
            "CreatedDate": stamp,
        }
    won.update(CloseDate=_now().date().isoformat(), LastModifiedDate=stamp, SystemModstamp=stamp)
    store.journal.commit([("crm", "Opportunity", won)])
    return [{"system": "crm", "object": "Opportunity", "id": won["Id"]}]


def new_invoice(store: StateStore) -> list[Touched]:
    """The next period's invoice of an active subscription, finalized and open."""
    invoices = store.collection("billing", "invoices")
    active = {
        s["id"] for s in store.collection("billing", "subscriptions") if s.get("status") == "active"
    }
    latest: dict[str, dict[str, Any]] = {}
    for invoice in invoices:
        details = (invoice.get("parent") or {}).get("subscription_details") or {}
        subscription = details.get("subscription")
        if subscription in active and invoice.get("created", 0) >= latest.get(subscription, {}).get(
            "created", -1
        ):
            latest[subscription] = invoice
    if not latest:
        raise ChangeError("no invoice of an active subscription in billing/invoices.jsonl")
    template = latest[sorted(latest)[0]]
    now = int(_now().timestamp())
    span = int(template.get("period_end") or now) - int(template.get("period_start") or now)
    start = int(template.get("period_end") or now)
    invoice = copy.deepcopy(template)
    invoice_id = _stripe_id("in_")
    invoice.update(
        id=invoice_id,
        number=f"{template.get('number') or 'INV'}-N{now % 100000}",
        status="open",
        created=now,
        period_start=start,
        period_end=start + max(span, 0),
        amount_paid=0,
        amount_remaining=invoice.get("amount_due") or invoice.get("total") or 0,
        status_transitions={"finalized_at": now, "paid_at": None, "voided_at": None},
    )
    lines = invoice.get("lines") or {}
    for line in lines.get("data") or []:
        line["id"] = _stripe_id("il_")
        line["period"] = {"start": start, "end": start + max(span, 0)}
    if lines:
        lines["url"] = f"/v1/invoices/{invoice_id}/lines"
    store.journal.commit(
        [("billing", "invoices", invoice), event_write("invoice.finalized", invoice)]
    )
    return [{"system": "billing", "object": "invoice", "id": invoice_id}]


def pay_invoice(store: StateStore) -> list[Touched]:
    """The oldest open invoice is paid in full, through a new invoice payment."""
    invoices = store.collection("billing", "invoices")
    open_ = sorted(
        (i for i in invoices if i.get("status") == "open"), key=lambda i: (i["created"], i["id"])
    )
    if not open_:
        raise ChangeError("no open invoice in billing/invoices.jsonl")
    now = int(_now().timestamp())
    invoice = copy.deepcopy(open_[0])
    due = invoice.get("amount_due") or invoice.get("total") or 0
    transitions = dict(invoice.get("status_transitions") or {})
    transitions["paid_at"] = now
    invoice.update(status="paid", amount_paid=due, amount_remaining=0)
    invoice["status_transitions"] = transitions
    payment = {
        "id": _stripe_id("inpay_"),
        "object": "invoice_payment",
        "invoice": invoice["id"],
        "amount_paid": due,
        "amount_requested": due,
        "currency": invoice.get("currency"),
        "is_default": True,
        "status": "paid",
        "payment": {"type": "payment_intent", "payment_intent": _stripe_id("pi_")},
        "status_transitions": {"paid_at": now, "canceled_at": None},
        "created": now,
        "livemode": False,
    }
    store.journal.commit(
        [
            ("billing", "invoice_payments", payment),
            ("billing", "invoices", invoice),
            event_write("invoice_payment.paid", payment),
            event_write("invoice.paid", invoice, previous={"status": "open"}),
        ]
    )
    return [
        {"system": "billing", "object": "invoice_payment", "id": payment["id"]},
        {"system": "billing", "object": "invoice", "id": invoice["id"]},
    ]


def drift_erp_invoice(store: StateStore) -> list[Touched]:
    """Someone edits the newest ERP invoice's total by hand: drift the next run must find."""
    invoices = store.collection("erp", "invoice")
    if not len(invoices):
        raise ChangeError("no invoice in erp/invoice.jsonl")
    newest = max(invoices, key=lambda i: (len(str(i["id"])), str(i["id"])))
    invoice = copy.deepcopy(newest)
    invoice["total"] = round(float(invoice.get("total") or 0) + 10.0, 2)
    invoice["subtotal"] = round(float(invoice.get("subtotal") or 0) + 10.0, 2)
    invoice["lastModifiedDate"] = _now().strftime("%Y-%m-%dT%H:%M:%SZ")
    store.journal.commit([("erp", "invoice", invoice)])
    return [{"system": "erp", "object": "invoice", "id": str(invoice["id"])}]


CHANGES: dict[str, Callable[[StateStore], list[Touched]]] = {
    "win-opportunity": win_opportunity,
    "new-invoice": new_invoice,
    "pay-invoice": pay_invoice,
    "drift-erp-invoice": drift_erp_invoice,
}


def apply_change(store: StateStore, name: str) -> list[Touched]:
    """Run one named change under the store's lock; KeyError names the known changes."""
    if name not in CHANGES:
        raise KeyError(f"unknown change {name!r}; known: {', '.join(CHANGES)}")
    with store.lock:
        return CHANGES[name](store)
