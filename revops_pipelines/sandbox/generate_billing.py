"""Billing's records of the generated world (Stripe shapes): products and prices, customers,
subscriptions, and the invoices of each billing period with their payments and credit notes."""

from __future__ import annotations

from revops_pipelines.sandbox.generate_core import (
    AS_OF,
    B62,
    DAY,
    NOW,
    PRICE_FACTOR,
    TAX_RATE_MILLI,
    Bill,
    Customer,
    Ids,
    Product,
    World,
    add_months,
    day,
    tax_for,
)


def add_billing_product(world: World, product: Product, *, created: int) -> str:
    """The product with a monthly and a yearly price per currency; returns the product id."""
    ids = world.ids
    prod_id = ids.stripe("prod")
    world.billing_product[product.sku] = world.add(
        "billing/products",
        {
            "id": prod_id,
            "object": "product",
            "active": True,
            "name": product.name,
            "created": created,
            "updated": created,
            "metadata": {"sku": product.sku},
        },
    )
    for currency, factor in PRICE_FACTOR.items():
        for interval, per_month in (
            ("month", product.usd_monthly),
            ("year", product.usd_yearly_per_month),
        ):
            monthly = round(per_month * factor)
            world.prices[(product.sku, currency, interval)] = world.add(
                "billing/prices",
                {
                    "id": ids.stripe("price"),
                    "object": "price",
                    "product": prod_id,
                    "currency": currency.lower(),
                    "unit_amount": monthly if interval == "month" else monthly * 12,
                    "type": "recurring",
                    "recurring": {
                        "interval": interval,
                        "interval_count": 1,
                        "usage_type": "licensed",
                    },
                    "active": True,
                    "created": created,
                },
            )
    return prod_id


def provision_billing(world: World, customer: Customer, *, created: int) -> None:
    account, entity = customer.account, customer.entity
    cus_id = world.ids.stripe("cus")
    customer.billing = world.add(
        "billing/customers",
        {
            "id": cus_id,
            "object": "customer",
            "created": created,
            "livemode": False,
            "name": account["Name"],
            "email": customer.email,
            "currency": entity.currency.lower(),
            "balance": 0,
            "delinquent": False,
            "address": {
                "line1": account["BillingStreet"],
                "line2": None,
                "city": account["BillingCity"],
                "state": account["BillingState"],
                "postal_code": account["BillingPostalCode"],
                "country": entity.country,
            },
            "tax_exempt": "exempt" if customer.exempt else "none",
            "metadata": {"crm_account_id": account["Id"], "legal_entity": entity.code},
        },
    )
    account["Billing_Customer_Id__c"] = cus_id
    customer.invoice_prefix = "".join(world.rng.choices(B62[10:36], k=8))
    for deal in customer.deals:
        if deal.subscription is not None:
            deal.subscription["customer"] = cus_id
            deal.bills = bill_subscription(world, customer, deal.subscription)


def new_subscription(
    world: World,
    customer: Customer,
    *,
    start: int,
    interval: str,
    canceled_at: int | None,
    lines: list[tuple[Product, int]],
    opportunity_id: str | None,
    cancel_at_period_end: bool = False,
) -> dict:
    """A subscription whose items match the opportunity lines at the customer's prices."""
    ids = world.ids
    sub_id = ids.stripe("sub")
    step = 12 if interval == "year" else 1
    last = min(NOW, canceled_at - 1) if canceled_at else NOW
    k = 0
    while add_months(start, (k + 1) * step) <= last:
        k += 1
    period_start, period_end = add_months(start, k * step), add_months(start, (k + 1) * step)
    items = [
        {
            "id": ids.stripe("si"),
            "object": "subscription_item",
            "price": world.prices[(product.sku, customer.currency, interval)],
            "quantity": quantity,
            "current_period_start": period_start,
            "current_period_end": period_end,
        }
        for product, quantity in lines
    ]
    return world.add(
        "billing/subscriptions",
        {
            "id": sub_id,
            "object": "subscription",
            "customer": customer.billing["id"] if customer.billing else None,
            "status": "canceled" if canceled_at else "active",
            "currency": customer.currency.lower(),
            "created": start,
            "start_date": start,
            "canceled_at": canceled_at
            if canceled_at
            else (NOW - DAY if cancel_at_period_end else None),
            "ended_at": canceled_at,
            "cancel_at_period_end": cancel_at_period_end,
            "metadata": {"crm_opportunity_id": opportunity_id} if opportunity_id else {},
            "items": {
                "object": "list",
                "url": f"/v1/subscription_items?subscription={sub_id}",
                "has_more": False,
                "data": items,
            },
        },
    )


def bill_subscription(world: World, customer: Customer, sub: dict) -> list[Bill]:
    """One invoice per billing period inside the history window, with payments."""
    step = 12 if sub["items"]["data"][0]["price"]["recurring"]["interval"] == "year" else 1
    bills, k = [], 0
    while True:
        period_start = add_months(sub["start_date"], k * step)
        k += 1
        if period_start > NOW or (sub["ended_at"] and period_start >= sub["ended_at"]):
            return bills
        if period_start >= world.window_start:
            period_end = add_months(sub["start_date"], k * step)
            bills.append(_invoice(world, customer, sub, period_start, period_end))


# A share of invoices bills the largest quantity as usage, one line per batch of units: more
# lines (25+) than Stripe embeds in an invoice, so readers must page `invoice.lines`.
USAGE_INVOICE_SHARE = 0.01
USAGE_LINES = 30


def _as_usage_lines(ids: Ids, lines: list[dict]) -> list[dict]:
    """The line with the largest quantity split into up to 30 usage lines of the same total."""
    biggest = max(range(len(lines)), key=lambda i: lines[i]["quantity"])
    line = lines[biggest]
    count = min(line["quantity"], USAGE_LINES)
    if count < 25:
        return lines
    unit = int(line["pricing"]["unit_amount_decimal"])
    name = line["description"].split(" × ", 1)[1]
    base, extra = divmod(line["quantity"], count)
    parts = [base + 1] * extra + [base] * (count - extra)
    usage = [
        {
            **line,
            "id": line["id"] if n == 0 else ids.stripe("il"),
            "amount": unit * part,
            "description": f"{part} × {name} (usage)",
            "quantity": part,
        }
        for n, part in enumerate(parts)
    ]
    return [*lines[:biggest], *usage, *lines[biggest + 1 :]]


def _invoice(world: World, customer: Customer, sub: dict, start: int, end: int) -> Bill:
    rng, ids, cur = world.rng, world.ids, customer.currency.lower()
    inv_id = ids.stripe("in")
    lines, subtotal = [], 0
    for item in sub["items"]["data"]:
        price = item["price"]
        amount = price["unit_amount"] * item["quantity"]
        subtotal += amount
        product_name = world.files["billing/products"][price["product"]]["name"]
        lines.append(
            {
                "id": ids.stripe("il"),
                "object": "line_item",
                "amount": amount,
                "currency": cur,
                "description": f"{item['quantity']} × {product_name}",
                "quantity": item["quantity"],
                "period": {"start": start, "end": end},
                "pricing": {
                    "type": "price_details",
                    "price_details": {"price": price["id"], "product": price["product"]},
                    "unit_amount_decimal": str(price["unit_amount"]),
                },
            }
        )
    if rng.random() < USAGE_INVOICE_SHARE:
        lines = _as_usage_lines(ids, lines)
    tax = tax_for(subtotal, customer.jurisdiction, exempt=customer.exempt)
    total = subtotal + tax
    status, finalized, paid_at, voided_at = "draft", None, None, None
    if day(start) != AS_OF.isoformat():
        finalized = start + 3600
        age = NOW - start
        r = rng.random()
        if total == 0:
            status, paid_at = "paid", finalized
        elif age < 10 * DAY:
            status = "paid" if r < 0.5 else "open"
        else:
            status = (
                "paid"
                if r < 0.95
                else "open"
                if r < 0.975
                else "void"
                if r < 0.99
                else ("uncollectible")
            )
        if status == "paid" and paid_at is None:
            paid_at = finalized + rng.randint(600, 10 * DAY)
            if paid_at > NOW:
                status, paid_at = "open", None
        elif status == "void":
            voided_at = finalized + rng.randint(DAY, 20 * DAY)
    if finalized is not None:
        customer.invoice_seq += 1
    reason = (
        "customer_exempt"
        if customer.exempt
        else ("standard_rated" if TAX_RATE_MILLI[customer.jurisdiction] else "not_subject_to_tax")
    )
    paid = total if status == "paid" else 0
    invoice = world.add(
        "billing/invoices",
        {
            "id": inv_id,
            "object": "invoice",
            "customer": customer.billing["id"],
            "number": f"{customer.invoice_prefix}-{customer.invoice_seq:04d}"
            if finalized
            else None,
            "status": status,
            "currency": cur,
            "created": start,
            "period_start": start,
            "period_end": end,
            "subtotal": subtotal,
            "total": total,
            "total_excluding_tax": subtotal,
            "amount_due": total,
            "amount_paid": paid,
            "amount_remaining": 0 if status in ("paid", "void") else total - paid,
            "total_taxes": [
                {
                    "amount": tax,
                    "tax_behavior": "exclusive",
                    "taxable_amount": subtotal,
                    "taxability_reason": reason,
                    "type": "tax_rate_details",
                    "tax_rate_details": {
                        "tax_rate": "txr_" + customer.jurisdiction.replace("-", "")
                    },
                }
            ],
            "parent": {
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": sub["id"],
                    "metadata": dict(sub["metadata"]),
                },
            },
            "lines": {
                "object": "list",
                "url": f"/v1/invoices/{inv_id}/lines",
                "has_more": False,
                "data": lines,
            },
            "status_transitions": {
                "finalized_at": finalized,
                "paid_at": paid_at,
                "voided_at": voided_at,
            },
            "metadata": {},
        },
    )
    bill = Bill(invoice=invoice)
    if status == "paid" and total > 0:
        bill.payment = world.add(
            "billing/invoice_payments",
            {
                "id": ids.stripe("inpay"),
                "object": "invoice_payment",
                "invoice": inv_id,
                "amount_paid": total,
                "amount_requested": total,
                "currency": cur,
                "is_default": True,
                "status": "paid",
                "payment": {"type": "payment_intent", "payment_intent": ids.stripe("pi")},
                "status_transitions": {"paid_at": paid_at, "canceled_at": None},
                "created": finalized,
                "livemode": False,
            },
        )
        if rng.random() < 0.01 and paid_at + 5 * DAY < NOW:
            bill.credit_note = world.add(
                "billing/credit_notes",
                {
                    "id": ids.stripe("cn"),
                    "object": "credit_note",
                    "invoice": inv_id,
                    "customer": customer.billing["id"],
                    "currency": cur,
                    "total": max(1, total // 10),
                    "status": "issued",
                    "created": paid_at + rng.randint(DAY, 5 * DAY),
                    "reason": "product_unsatisfactory",
                },
            )
    return bill
