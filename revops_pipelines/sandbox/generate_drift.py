"""Known drift injected into a drift-free world, one root cause per injection.

Each injection takes a customer no other injection touched and changes only what its
code needs, so reconciliation should report exactly the truth line and nothing else
(DRIFT.md's one-cause rules).

code → how it is injected:

- customer_missing_in_billing: billing customer removed with its subscriptions, invoices,
  payments, credit notes and ERP postings; CRM link fields cleared.
- customer_missing_in_erp: ERP customer removed with its ERP invoices, payments, credit memos.
- customer_attribute_mismatch: ERP customer email or companyName changed (alternating).
- customer_duplicate: second live billing customer, same name up to case/whitespace, same
  email up to case, same country, no CRM link, no subscriptions or invoices.
- customer_missing_tax_or_entity: CRM Legal_Entity__c or Tax_Jurisdiction__c blanked
  (alternating); its ERP customer and postings never made.
- unlinked_match: billing metadata.crm_account_id and CRM Billing_Customer_Id__c cleared, or
  the ERP customer's externalId cleared (alternating).
- product_unmapped: new SKU in the CRM and billing catalogs, no ERP item, used on no line.
- subscription_missing_for_won_opportunity: the subscription of a won opportunity older than
  the grace period removed with its invoices, payments and ERP postings; the customer keeps
  another subscription.
- subscription_amount_mismatch: quantity of a priced item raised on an active subscription.
- subscription_status_mismatch: active subscription canceled an hour before as_of; the CRM
  contract stays Activated.
- invoice_missing_in_erp: ERP invoice removed with its ERP payment and credit memo.
- invoice_orphan_in_erp: extra open ERP invoice whose externalId names no billing invoice.
- invoice_duplicate_in_erp: copy of a posted ERP invoice under a higher transaction id.
- invoice_amount_mismatch: open ERP invoice, one line's rate raised by one major unit with
  subtotal, total and amountRemaining; tax unchanged.
- invoice_tax_mismatch: one ERP line's rate lowered by one major unit and the difference moved
  from subtotal to taxTotal; total unchanged.
- invoice_currency_mismatch: ERP invoice currency switched to another two-decimal currency.
- invoice_status_mismatch: an invoice open in both systems voided in billing only (ERP behind).
- payment_missing_in_erp: ERP payment removed; its ERP invoice left open, total remaining.
- payment_amount_mismatch: ERP payment applies one major unit less; its ERP invoice left open
  with that unit remaining.
- payment_orphan_in_erp: ERP payment without externalId applying one major unit to an invoice
  open in both systems (status unchanged there).
- mrr_mismatch: extra active subscription linked to no opportunity, invoiced and posted
  like any other.
"""

from __future__ import annotations

from collections.abc import Callable

from revops_pipelines.sandbox.generate_billing import bill_subscription, new_subscription
from revops_pipelines.sandbox.generate_core import (
    AS_OF,
    CURRENCY_IDS,
    DAY,
    EXPONENTS,
    NOW,
    PRODUCTS,
    Bill,
    Customer,
    Deal,
    Product,
    World,
    iso_z,
    major,
    midnight,
    sf_datetime,
)
from revops_pipelines.sandbox.generate_erp import post_bill
from revops_pipelines.sandbox.generate_world import add_product

CODES: tuple[str, ...] = (
    "customer_missing_in_billing",
    "customer_missing_in_erp",
    "customer_attribute_mismatch",
    "customer_duplicate",
    "customer_missing_tax_or_entity",
    "unlinked_match",
    "product_unmapped",
    "subscription_missing_for_won_opportunity",
    "subscription_amount_mismatch",
    "subscription_status_mismatch",
    "invoice_missing_in_erp",
    "invoice_orphan_in_erp",
    "invoice_duplicate_in_erp",
    "invoice_amount_mismatch",
    "invoice_tax_mismatch",
    "invoice_currency_mismatch",
    "invoice_status_mismatch",
    "payment_missing_in_erp",
    "payment_amount_mismatch",
    "payment_orphan_in_erp",
    "mrr_mismatch",
)

GRACE_DAYS = 30
CRM_CHANGED = sf_datetime(NOW - 3600)
ERP_CHANGED = iso_z(NOW - 3600)

Truth = dict[str, object]
Injector = Callable[[World, Customer, int], Truth | None]


class DriftInjectionError(ValueError):
    """The world has too few untouched customers for the drift asked for."""


def drift_count(*, customers: int, drift_rate: float) -> int:
    """round(rate × customers), raised so every code appears once from 50 customers on."""
    count = round(drift_rate * customers)
    if drift_rate > 0 and customers >= 50:
        count = max(count, len(CODES))
    return count


def inject_drift(world: World, *, count: int) -> list[Truth]:
    """Inject `count` drifts round-robin over CODES; returns one truth line per drift."""
    pool = list(world.customers)
    world.rng.shuffle(pool)
    truths: list[Truth] = []
    for n in range(count):
        code = CODES[n % len(CODES)]
        variant = n // len(CODES)
        if code == "product_unmapped":
            truths.append(_product_unmapped(world, variant))
            continue
        for i, customer in enumerate(pool):
            truth = INJECTORS[code](world, customer, variant)
            if truth is not None:
                del pool[i]
                world.drifted.add(customer.index)
                truths.append({"drift_type": code, **truth})
                break
        else:
            raise DriftInjectionError(
                f"drift {code}: no untouched customer qualifies after {len(truths)} injections;"
                " lower --drift-rate or raise --customers"
            )
    return truths


# --- helpers -------------------------------------------------------------------------


def _touch_crm(record: dict) -> None:
    record["SystemModstamp"] = CRM_CHANGED
    if "LastModifiedDate" in record:
        record["LastModifiedDate"] = CRM_CHANGED


def _remove_erp_postings(world: World, bill: Bill) -> None:
    world.remove("erp/invoice", bill.erp_invoice)
    world.remove("erp/customerpayment", bill.erp_payment)
    world.remove("erp/creditmemo", bill.erp_credit_memo)
    bill.erp_invoice = bill.erp_payment = bill.erp_credit_memo = None


def _remove_bill(world: World, bill: Bill) -> None:
    _remove_erp_postings(world, bill)
    world.remove("billing/invoices", bill.invoice)
    world.remove("billing/invoice_payments", bill.payment)
    world.remove("billing/credit_notes", bill.credit_note)


def _remove_subscription(world: World, deal: Deal) -> None:
    for bill in deal.bills:
        _remove_bill(world, bill)
    deal.bills = []
    world.remove("billing/subscriptions", deal.subscription)
    deal.subscription = None
    deal.opportunity["Billing_Subscription_Id__c"] = None
    _touch_crm(deal.opportunity)


def _remove_erp_customer(world: World, customer: Customer) -> None:
    for bill in customer.all_bills():
        _remove_erp_postings(world, bill)
    world.remove("erp/customer", customer.erp)
    customer.erp = None


def _posted(customer: Customer) -> list[Bill]:
    return [b for b in customer.all_bills() if b.erp_invoice is not None]


def _active_deals(customer: Customer) -> list[Deal]:
    return [
        d
        for d in customer.deals
        if d.subscription is not None
        and d.subscription["status"] == "active"
        and not d.subscription["cancel_at_period_end"]
    ]


def _unit(customer: Customer) -> int:
    return 10 ** EXPONENTS[customer.currency]


def _first(bills: list[Bill], test: Callable[[Bill], bool]) -> Bill | None:
    return next((b for b in bills if test(b)), None)


def _ids(bill: Bill) -> Truth:
    return {"billing_id": bill.invoice["id"], "erp_id": bill.erp_invoice["id"]}


def _erp_copy(world: World, erp_invoice: dict, *, external_id: str) -> dict:
    tx_id = world.ids.erp("transaction")
    copy = dict(erp_invoice)
    copy.update(
        links=[{"rel": "self", "href": f"/services/rest/record/v1/invoice/{tx_id}"}],
        id=tx_id,
        externalId=external_id,
        tranId=f"INV-{int(tx_id):06d}",
        item={"items": [dict(i) for i in erp_invoice["item"]["items"]]},
        dateCreated=ERP_CHANGED,
        lastModifiedDate=ERP_CHANGED,
    )
    return world.add("erp/invoice", copy)


# --- customers -----------------------------------------------------------------------


def _customer_missing_in_billing(world: World, c: Customer, variant: int) -> Truth | None:
    for deal in c.deals:
        if deal.subscription is not None:
            _remove_subscription(world, deal)
    for bill in c.extra_bills:
        _remove_bill(world, bill)
    if c.erp is not None:
        _remove_erp_customer(world, c)
    world.remove("billing/customers", c.billing)
    c.billing = None
    c.account["Billing_Customer_Id__c"] = None
    _touch_crm(c.account)
    return {
        "entity": "customer",
        "crm_id": c.account["Id"],
        "note": "billing customer, its subscriptions, invoices and ERP postings removed",
    }


def _customer_missing_in_erp(world: World, c: Customer, variant: int) -> Truth | None:
    if c.erp is None or not _posted(c):
        return None
    _remove_erp_customer(world, c)
    return {
        "entity": "customer",
        "billing_id": c.billing["id"],
        "note": "ERP customer removed with its ERP invoices, payments and credit memos",
    }


def _customer_attribute_mismatch(world: World, c: Customer, variant: int) -> Truth | None:
    if c.erp is None:
        return None
    if variant % 2 == 0:
        field, value = "email", f"finance-{c.index:05d}@changed.example"
        c.erp["email"] = value
    else:
        field, value = "name", f"{c.erp['companyName']} Group"
        c.erp["companyName"] = value
    c.erp["lastModifiedDate"] = ERP_CHANGED
    return {
        "entity": "customer",
        "erp_id": c.erp["id"],
        "field": field,
        "note": f"ERP customer {field} changed to {value!r}",
    }


def _customer_duplicate(world: World, c: Customer, variant: int) -> Truth | None:
    original = c.billing
    if original is None:
        return None
    name = original["name"]
    name = (name.upper() if name != name.upper() else name.lower()) + " "
    dup = dict(original)
    dup.update(
        id=world.ids.stripe("cus"),
        created=max(original["created"] + DAY, NOW - world.rng.randint(2, 20) * DAY),
        name=name,
        email=original["email"].upper(),
        address=dict(original["address"]),
        metadata={"legal_entity": original["metadata"]["legal_entity"]},
    )
    world.add("billing/customers", dup)
    return {
        "entity": "customer",
        "billing_id": dup["id"],
        "note": f"second billing customer for {original['id']} (case/whitespace variant, no link)",
    }


def _customer_missing_tax_or_entity(world: World, c: Customer, variant: int) -> Truth | None:
    if c.erp is None:
        return None
    field = "Legal_Entity__c" if variant % 2 == 0 else "Tax_Jurisdiction__c"
    c.account[field] = None
    _touch_crm(c.account)
    _remove_erp_customer(world, c)
    return {
        "entity": "customer",
        "crm_id": c.account["Id"],
        "note": f"CRM {field} blank, so the customer was never posted to the ERP",
    }


def _unlinked_match(world: World, c: Customer, variant: int) -> Truth | None:
    if c.erp is None:
        return None
    if variant % 2 == 0:
        c.billing["metadata"] = {"legal_entity": c.billing["metadata"]["legal_entity"]}
        c.account["Billing_Customer_Id__c"] = None
        _touch_crm(c.account)
        return {
            "entity": "customer",
            "billing_id": c.billing["id"],
            "note": "CRM account ↔ billing customer link cleared on both sides",
        }
    c.erp["externalId"] = None
    c.erp["lastModifiedDate"] = ERP_CHANGED
    return {
        "entity": "customer",
        "erp_id": c.erp["id"],
        "note": "ERP customer externalId cleared",
    }


def _product_unmapped(world: World, variant: int) -> Truth:
    sku = f"ADD-BETA-{variant + 1:03d}"
    product = Product(sku, f"Beta Feature {variant + 1}", "Add-on", 9_900, 8_900)
    add_product(world, product, created=NOW - (10 + variant) * DAY, in_erp=False)
    return {
        "drift_type": "product_unmapped",
        "entity": "product",
        "field": "sku",
        "expected": sku,
        "note": f"SKU {sku} in the CRM and billing catalogs has no ERP item",
    }


# --- subscriptions -------------------------------------------------------------------


def _subscription_missing(world: World, c: Customer, variant: int) -> Truth | None:
    cutoff = midnight(AS_OF) - (GRACE_DAYS + 5) * DAY
    old = [d for d in _active_deals(c) if d.subscription["start_date"] < cutoff]
    others = [d for d in c.deals if d.subscription is not None]
    if not old or len(others) < 2 or c.erp is None:
        return None
    deal = old[0]
    sub_id = deal.subscription["id"]
    _remove_subscription(world, deal)
    return {
        "entity": "subscription",
        "crm_id": deal.opportunity["Id"],
        "note": f"subscription {sub_id} and its invoices/payments removed in billing and ERP",
    }


def _subscription_amount_mismatch(world: World, c: Customer, variant: int) -> Truth | None:
    for deal in _active_deals(c):
        for item in deal.subscription["items"]["data"]:
            if item["price"]["unit_amount"] > 0:
                before = item["quantity"]
                item["quantity"] = before + world.rng.randint(1, 5)
                return {
                    "entity": "subscription",
                    "crm_id": deal.opportunity["Id"],
                    "billing_id": deal.subscription["id"],
                    "note": f"item {item['id']} quantity {before} → {item['quantity']}",
                }
    return None


def _subscription_status_mismatch(world: World, c: Customer, variant: int) -> Truth | None:
    deals = _active_deals(c)
    if not deals:
        return None
    sub = deals[0].subscription
    sub.update(status="canceled", canceled_at=NOW - 3600, ended_at=NOW - 3600)
    return {
        "entity": "subscription",
        "billing_id": sub["id"],
        "note": "billing subscription canceled while the CRM contract is Activated",
    }


def _mrr_mismatch(world: World, c: Customer, variant: int) -> Truth | None:
    # A won opportunity still waiting for its subscription would explain the MRR difference.
    waiting = any(d.subscription is None for d in c.deals)
    if c.erp is None or c.billing is None or waiting or not _active_deals(c):
        return None
    start = midnight(AS_OF) - world.rng.randint(35, 55) * DAY + 9 * 3600
    sub = new_subscription(
        world,
        c,
        start=start,
        interval="month",
        canceled_at=None,
        lines=[(PRODUCTS[2], 1)],
        opportunity_id=None,
    )
    bills = bill_subscription(world, c, sub)
    for bill in bills:
        post_bill(world, c, bill)
    c.extra_bills.extend(bills)
    return {
        "entity": "customer",
        "crm_id": c.account["Id"],
        "billing_id": c.billing["id"],
        "note": f"active subscription {sub['id']} linked to no opportunity",
    }


# --- invoices ------------------------------------------------------------------------


def _invoice_missing_in_erp(world: World, c: Customer, variant: int) -> Truth | None:
    bill = _first(_posted(c), lambda b: b.erp_payment is not None) or _first(
        _posted(c), lambda b: True
    )
    if bill is None:
        return None
    truth = {"entity": "invoice", "billing_id": bill.invoice["id"]}
    _remove_erp_postings(world, bill)
    return {**truth, "note": "ERP invoice removed with its ERP payment"}


def _invoice_orphan_in_erp(world: World, c: Customer, variant: int) -> Truth | None:
    posted = _posted(c)
    if not posted:
        return None
    copy = _erp_copy(world, posted[-1].erp_invoice, external_id=world.ids.stripe("in"))
    copy.update(
        status={"id": "open", "refName": "Open"},
        amountRemaining=copy["total"],
        tranDate=iso_z(NOW - 3600)[:10],
    )
    return {
        "entity": "invoice",
        "erp_id": copy["id"],
        "note": f"ERP invoice with externalId {copy['externalId']} that is no billing invoice",
    }


def _invoice_duplicate_in_erp(world: World, c: Customer, variant: int) -> Truth | None:
    bill = _first(_posted(c), lambda b: b.invoice["status"] == "paid")
    if bill is None:
        return None
    copy = _erp_copy(world, bill.erp_invoice, external_id=bill.invoice["id"])
    return {
        "entity": "invoice",
        "billing_id": bill.invoice["id"],
        "erp_id": copy["id"],
        "note": f"second ERP invoice for {bill.invoice['id']} (first is {bill.erp_invoice['id']})",
    }


def _is_open(bill: Bill) -> bool:
    return bill.invoice["status"] == "open" and bill.erp_invoice["status"]["id"] == "open"


def _shift_first_line(bill: Bill, currency: str, unit_delta: int) -> int | None:
    """Move the first priced line's ERP rate by unit_delta minor units; the amount change."""
    inv = bill.invoice
    for line, erp_line in zip(inv["lines"]["data"], bill.erp_invoice["item"]["items"], strict=True):
        unit = int(line["pricing"]["unit_amount_decimal"])
        if unit + unit_delta > 0 and line["quantity"] > 0:
            erp_line["rate"] = major(unit + unit_delta, currency)
            erp_line["amount"] = major(line["amount"] + unit_delta * line["quantity"], currency)
            return unit_delta * line["quantity"]
    return None


def _invoice_amount_mismatch(world: World, c: Customer, variant: int) -> Truth | None:
    bill = _first(_posted(c), lambda b: _is_open(b) and b.invoice["total"] > 0)
    if bill is None:
        return None
    inv, cur = bill.invoice, c.currency
    delta = _shift_first_line(bill, cur, _unit(c))
    if delta is None:
        return None
    total = inv["total"] + delta
    bill.erp_invoice.update(
        subtotal=major(inv["subtotal"] + delta, cur),
        total=major(total, cur),
        amountRemaining=major(total, cur),
        lastModifiedDate=ERP_CHANGED,
    )
    return {**_ids(bill), "entity": "invoice", "note": f"ERP total raised by {delta} minor units"}


def _invoice_tax_mismatch(world: World, c: Customer, variant: int) -> Truth | None:
    def fits(b: Bill) -> bool:
        return b.invoice["status"] in ("paid", "open") and any(
            int(li["pricing"]["unit_amount_decimal"]) > _unit(c)
            for li in b.invoice["lines"]["data"]
        )

    bill = _first(_posted(c), fits)
    if bill is None:
        return None
    inv, cur = bill.invoice, c.currency
    delta = -_shift_first_line(bill, cur, -_unit(c))
    tax = sum(t["amount"] for t in inv["total_taxes"])
    bill.erp_invoice.update(
        subtotal=major(inv["subtotal"] - delta, cur),
        taxTotal=major(tax + delta, cur),
        lastModifiedDate=ERP_CHANGED,
    )
    return {**_ids(bill), "entity": "invoice", "note": f"{delta} minor units moved to ERP tax"}


_OTHER_CURRENCY = {"USD": "EUR", "GBP": "USD", "EUR": "USD"}


def _invoice_currency_mismatch(world: World, c: Customer, variant: int) -> Truth | None:
    other = _OTHER_CURRENCY.get(c.currency)
    bill = _first(_posted(c), lambda b: b.invoice["total"] > 0) if other else None
    if bill is None:
        return None
    bill.erp_invoice["currency"] = {"id": CURRENCY_IDS[other], "refName": other}
    bill.erp_invoice["lastModifiedDate"] = ERP_CHANGED
    return {**_ids(bill), "entity": "invoice", "note": f"ERP currency {c.currency} → {other}"}


def _invoice_status_mismatch(world: World, c: Customer, variant: int) -> Truth | None:
    bill = _first(_posted(c), _is_open)
    if bill is None:
        return None
    inv = bill.invoice
    inv.update(status="void", amount_remaining=0)
    inv["status_transitions"] = {**inv["status_transitions"], "voided_at": NOW - 3600}
    return {**_ids(bill), "entity": "invoice", "note": "voided in billing, still open in the ERP"}


# --- payments ------------------------------------------------------------------------


def _payment_missing_in_erp(world: World, c: Customer, variant: int) -> Truth | None:
    bill = _first(_posted(c), lambda b: b.erp_payment is not None)
    if bill is None:
        return None
    world.remove("erp/customerpayment", bill.erp_payment)
    bill.erp_payment = None
    bill.erp_invoice.update(
        status={"id": "open", "refName": "Open"},
        amountRemaining=major(bill.invoice["total"], c.currency),
        lastModifiedDate=ERP_CHANGED,
    )
    return {
        "entity": "payment",
        "billing_id": bill.payment["id"],
        "note": "ERP payment removed; the ERP invoice stays open",
    }


def _payment_amount_mismatch(world: World, c: Customer, variant: int) -> Truth | None:
    unit = _unit(c)
    bill = _first(
        _posted(c), lambda b: b.erp_payment is not None and b.payment["amount_paid"] > 2 * unit
    )
    if bill is None:
        return None
    cur, applied = c.currency, bill.payment["amount_paid"] - unit
    pay = bill.erp_payment
    pay.update(payment=major(applied, cur), applied=major(applied, cur))
    pay["apply"] = {"items": [{**pay["apply"]["items"][0], "amount": major(applied, cur)}]}
    pay["lastModifiedDate"] = ERP_CHANGED
    bill.erp_invoice.update(
        status={"id": "open", "refName": "Open"},
        amountRemaining=major(unit, cur),
        lastModifiedDate=ERP_CHANGED,
    )
    return {
        "entity": "payment",
        "billing_id": bill.payment["id"],
        "erp_id": pay["id"],
        "note": f"ERP payment applies {unit} minor units less than billing",
    }


def _payment_orphan_in_erp(world: World, c: Customer, variant: int) -> Truth | None:
    unit = _unit(c)
    bill = _first(_posted(c), lambda b: _is_open(b) and b.invoice["total"] > 2 * unit)
    if bill is None:
        return None
    cur, erp_inv = c.currency, bill.erp_invoice
    pay_id = world.ids.erp("transaction")
    amount = major(unit, cur)
    world.add(
        "erp/customerpayment",
        {
            "links": [
                {"rel": "self", "href": f"/services/rest/record/v1/customerpayment/{pay_id}"}
            ],
            "id": pay_id,
            "externalId": None,
            "tranId": f"PYMT-{int(pay_id):06d}",
            "tranDate": ERP_CHANGED[:10],
            "customer": dict(erp_inv["entity"]),
            "currency": dict(erp_inv["currency"]),
            "payment": amount,
            "applied": amount,
            "unapplied": major(0, cur),
            "apply": {"items": [{"doc": {"id": erp_inv["id"]}, "apply": True, "amount": amount}]},
            "lastModifiedDate": ERP_CHANGED,
        },
    )
    erp_inv["amountRemaining"] = major(bill.invoice["total"] - unit, cur)
    erp_inv["lastModifiedDate"] = ERP_CHANGED
    return {
        "entity": "payment",
        "erp_id": pay_id,
        "note": f"ERP payment with no billing payment, partly applied to {erp_inv['id']}",
    }


INJECTORS: dict[str, Injector] = {
    "customer_missing_in_billing": _customer_missing_in_billing,
    "customer_missing_in_erp": _customer_missing_in_erp,
    "customer_attribute_mismatch": _customer_attribute_mismatch,
    "customer_duplicate": _customer_duplicate,
    "customer_missing_tax_or_entity": _customer_missing_tax_or_entity,
    "unlinked_match": _unlinked_match,
    "subscription_missing_for_won_opportunity": _subscription_missing,
    "subscription_amount_mismatch": _subscription_amount_mismatch,
    "subscription_status_mismatch": _subscription_status_mismatch,
    "invoice_missing_in_erp": _invoice_missing_in_erp,
    "invoice_orphan_in_erp": _invoice_orphan_in_erp,
    "invoice_duplicate_in_erp": _invoice_duplicate_in_erp,
    "invoice_amount_mismatch": _invoice_amount_mismatch,
    "invoice_tax_mismatch": _invoice_tax_mismatch,
    "invoice_currency_mismatch": _invoice_currency_mismatch,
    "invoice_status_mismatch": _invoice_status_mismatch,
    "payment_missing_in_erp": _payment_missing_in_erp,
    "payment_amount_mismatch": _payment_amount_mismatch,
    "payment_orphan_in_erp": _payment_orphan_in_erp,
    "mrr_mismatch": _mrr_mismatch,
}
