"""The ERP's records of the generated world (NetSuite shapes): subsidiaries, items, currency
rates, and the customers, invoices, payments and credit memos posted from billing."""

from __future__ import annotations

from revops_pipelines.sandbox.generate_core import (
    CURRENCY_IDS,
    ENTITIES,
    EXPONENTS,
    NOW,
    PRICE_FACTOR,
    Bill,
    Customer,
    Product,
    World,
    add_months,
    day,
    iso_z,
    major,
)

ERP_API = "/services/rest/record/v1"


def erp_ref(record_id: str, name: str) -> dict:
    return {"id": record_id, "refName": name}


def erp_links(kind: str, record_id: str) -> list[dict]:
    return [{"rel": "self", "href": f"{ERP_API}/{kind}/{record_id}"}]


def add_erp_item(world: World, product: Product, *, created: int, billing_id: str) -> None:
    item_id = world.ids.erp("item")
    world.erp_items[product.sku] = world.add(
        "erp/item",
        {
            "links": erp_links("inventoryItem", item_id),
            "id": item_id,
            "itemId": product.sku,
            "displayName": product.name,
            "externalId": billing_id,
            "isInactive": False,
            "lastModifiedDate": iso_z(created + 600),
        },
    )


def build_subsidiaries(world: World) -> None:
    for entity in ENTITIES:
        world.add(
            "erp/subsidiary",
            {
                "links": erp_links("subsidiary", entity.subsidiary_id),
                "id": entity.subsidiary_id,
                "name": entity.subsidiary_name,
                "country": entity.country,
                "currency": erp_ref(CURRENCY_IDS[entity.currency], entity.currency),
                "custrecord_legal_entity_code": entity.code,
                "lastModifiedDate": "2022-01-01T00:00:00Z",
            },
        )


def build_currency_rates(world: World) -> None:
    """A rate per foreign currency on the first of every month of the window, in the base
    currency of the first subsidiary, consistent with the prices (no random draw: the rest
    of the world stays the same for a seed)."""
    base = ENTITIES[0].currency
    months = [add_months(world.window_start, n) for n in range(world.months)]
    for entity in ENTITIES[1:]:
        # One major unit in the base currency's major units, as the price factors imply.
        par = 10 ** (entity.exponent - EXPONENTS[base]) / PRICE_FACTOR[entity.currency]
        for n, start in enumerate(months):
            rate_id = str(len(world.files["erp/currencyrate"]) + 1)
            world.add(
                "erp/currencyrate",
                {
                    "id": rate_id,
                    "baseCurrency": erp_ref(CURRENCY_IDS[base], base),
                    "transactionCurrency": erp_ref(CURRENCY_IDS[entity.currency], entity.currency),
                    "exchangeRate": round(par * (1 + 0.01 * (n % 5 - 2)), 8),
                    "effectiveDate": day(start),
                },
            )


def provision_erp_customer(world: World, customer: Customer) -> None:
    entity, billing = customer.entity, customer.billing
    erp_id = world.ids.erp("customer")
    created = billing["created"] + 600
    customer.erp = world.add(
        "erp/customer",
        {
            "links": erp_links("customer", erp_id),
            "id": erp_id,
            "externalId": billing["id"],
            "entityId": f"CUST-{erp_id}",
            "companyName": billing["name"],
            "email": billing["email"],
            "subsidiary": erp_ref(entity.subsidiary_id, entity.subsidiary_name),
            "currency": erp_ref(CURRENCY_IDS[entity.currency], entity.currency),
            "custentity_crm_account_id": customer.account["Id"],
            "custentity_tax_jurisdiction": customer.jurisdiction,
            "isInactive": False,
            "dateCreated": iso_z(created),
            "lastModifiedDate": iso_z(created),
        },
    )


_ERP_STATUS = {
    "paid": ("paidInFull", "Paid In Full"),
    "open": ("open", "Open"),
    "uncollectible": ("open", "Open"),
    "void": ("voided", "Voided"),
}


def post_bill(world: World, customer: Customer, bill: Bill) -> None:
    """Post a finalized invoice, its payment and credit note to the ERP as NetSuite would."""
    inv = bill.invoice
    finalized = inv["status_transitions"]["finalized_at"]
    if finalized is None:
        return
    ids, cur = world.ids, customer.currency
    erp_cust = customer.erp
    entity_ref = erp_ref(erp_cust["id"], erp_cust["companyName"])
    currency_ref = erp_ref(CURRENCY_IDS[cur], cur)
    items = []
    for line in inv["lines"]["data"]:
        price = world.files["billing/prices"][line["pricing"]["price_details"]["price"]]
        sku = world.files["billing/products"][price["product"]]["metadata"]["sku"]
        item = world.erp_items[sku]
        items.append(
            {
                "item": erp_ref(item["id"], item["itemId"]),
                "quantity": line["quantity"],
                "rate": major(price["unit_amount"], cur),
                "amount": major(line["amount"], cur),
                "description": item["displayName"],
            }
        )
    tax = sum(t["amount"] for t in inv["total_taxes"])
    status_id, status_name = _ERP_STATUS[inv["status"]]
    tx_id = ids.erp("transaction")
    transitions = inv["status_transitions"]
    modified = max(finalized, transitions["paid_at"] or 0, transitions["voided_at"] or 0) + 300
    bill.erp_invoice = world.add(
        "erp/invoice",
        {
            "links": erp_links("invoice", tx_id),
            "id": tx_id,
            "externalId": inv["id"],
            "tranId": f"INV-{int(tx_id):06d}",
            "tranDate": day(finalized),
            "entity": entity_ref,
            "subsidiary": erp_ref(customer.entity.subsidiary_id, customer.entity.subsidiary_name),
            "currency": currency_ref,
            "subtotal": major(inv["subtotal"], cur),
            "taxTotal": major(tax, cur),
            "total": major(inv["total"], cur),
            "amountRemaining": major(inv["amount_remaining"], cur),
            "status": {"id": status_id, "refName": status_name},
            "item": {"items": items},
            "custbody_billing_subscription_id": inv["parent"]["subscription_details"][
                "subscription"
            ],
            "dateCreated": iso_z(finalized + 300),
            "lastModifiedDate": iso_z(min(modified, NOW)),
        },
    )
    if bill.payment is not None:
        pay_id = ids.erp("transaction")
        amount = major(bill.payment["amount_paid"], cur)
        paid_at = bill.payment["status_transitions"]["paid_at"]
        bill.erp_payment = world.add(
            "erp/customerpayment",
            {
                "links": erp_links("customerpayment", pay_id),
                "id": pay_id,
                "externalId": bill.payment["id"],
                "tranId": f"PYMT-{int(pay_id):06d}",
                "tranDate": day(paid_at),
                "customer": entity_ref,
                "currency": currency_ref,
                "payment": amount,
                "applied": amount,
                "unapplied": major(0, cur),
                "apply": {"items": [{"doc": {"id": tx_id}, "apply": True, "amount": amount}]},
                "lastModifiedDate": iso_z(min(paid_at + 300, NOW)),
            },
        )
    if bill.credit_note is not None:
        memo_id = ids.erp("transaction")
        created = bill.credit_note["created"]
        bill.erp_credit_memo = world.add(
            "erp/creditmemo",
            {
                "links": erp_links("creditMemo", memo_id),
                "id": memo_id,
                "externalId": bill.credit_note["id"],
                "tranId": f"CM-{int(memo_id):06d}",
                "entity": entity_ref,
                "currency": currency_ref,
                "total": major(bill.credit_note["total"], cur),
                "createdFrom": {"id": tx_id},
                "tranDate": day(created),
                "lastModifiedDate": iso_z(min(created + 300, NOW)),
            },
        )
