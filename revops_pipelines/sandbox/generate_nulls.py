"""Null and absent fields wherever the real APIs have them (docs/NULLABILITY.md).

A state directory written by anyone may use every null the real APIs allow, so the generated
worlds use them too, in a share of records: open invoice payments whose `amount_paid` is null,
draft one-off invoices with no number, no parent and no transitions, customers with no email
(billing and so the ERP) or no address (billing and the CRM), subscriptions with empty
metadata, open opportunities with no Amount, credit notes with no reason. Only customers no
drift injection touched are changed, and none of these nulls is drift, so the truth stays exact.
"""

from __future__ import annotations

from revops_pipelines.sandbox.generate_core import NOW, PRODUCTS, Customer, World

SHARE = 0.08


def blank_optional_fields(world: World) -> None:
    rng = world.rng
    for customer in world.customers:
        if customer.index in world.drifted:
            continue
        billing, erp, account = customer.billing, customer.erp, customer.account
        # A value the system of record holds and another system lacks is drift (the other side
        # is behind), so each null is written where the value would have come from and copied
        # on as provisioning copies it.
        if billing is not None and rng.random() < SHARE:
            billing["email"] = None
            if erp is not None:
                erp["email"] = None  # the ERP customer is made from the billing customer
        if billing is not None and rng.random() < SHARE:
            billing["address"] = None
            account.update(
                BillingStreet=None,
                BillingCity=None,
                BillingState=None,
                BillingPostalCode=None,
                BillingCountry=None,
            )
        elif rng.random() < SHARE:
            account.update(BillingStreet=None, BillingCity=None, BillingPostalCode=None)
        for deal in customer.deals:
            sub = deal.subscription
            linked = sub is not None and deal.opportunity["Billing_Subscription_Id__c"] == sub["id"]
            if linked and rng.random() < SHARE:
                # The CRM side still holds the link; Stripe's metadata is then an empty object.
                sub["metadata"] = {}
                for bill in deal.bills:
                    bill.invoice["parent"]["subscription_details"]["metadata"] = {}
        for bill in customer.all_bills():
            invoice = bill.invoice
            if invoice["status"] == "open" and rng.random() < 0.5:
                _open_payment(world, invoice)
            if bill.credit_note is not None and rng.random() < 0.5:
                bill.credit_note["reason"] = None
        if billing is not None and rng.random() < SHARE:
            _draft_one_off(world, customer)
    for opportunity in world.files["crm/Opportunity"].values():
        if opportunity["IsClosed"] or opportunity["IsDeleted"] or rng.random() >= 0.3:
            continue
        # An opportunity without products has no Amount until someone enters one.
        opportunity.update(Amount=None, Contract_Term_Months__c=None, Type=None)
        lines = world.files["crm/OpportunityLineItem"]
        for line_id in [k for k, v in lines.items() if v["OpportunityId"] == opportunity["Id"]]:
            del lines[line_id]


def _open_payment(world: World, invoice: dict) -> None:
    """Stripe's default payment of a finalized invoice: open, nothing paid yet."""
    world.add(
        "billing/invoice_payments",
        {
            "id": world.ids.stripe("inpay"),
            "object": "invoice_payment",
            "invoice": invoice["id"],
            "amount_paid": None,
            "amount_requested": invoice["amount_remaining"],
            "currency": invoice["currency"],
            "is_default": True,
            "status": "open",
            "payment": {"type": "payment_intent", "payment_intent": world.ids.stripe("pi")},
            "status_transitions": {"paid_at": None, "canceled_at": None},
            "created": invoice["status_transitions"]["finalized_at"],
            "livemode": False,
        },
    )


def _draft_one_off(world: World, customer: Customer) -> None:
    """A one-off invoice still in draft: no number, no parent subscription, no transitions."""
    support = PRODUCTS[3]
    price = world.prices[(support.sku, customer.currency, "month")]
    created = NOW - world.rng.randint(60, 3000)
    invoice_id = world.ids.stripe("in")
    amount = price["unit_amount"]
    world.add(
        "billing/invoices",
        {
            "id": invoice_id,
            "object": "invoice",
            "customer": customer.billing["id"],
            "number": None,
            "status": "draft",
            "currency": price["currency"],
            "created": created,
            "period_start": created,
            "period_end": created,
            "subtotal": amount,
            "total": amount,
            "total_excluding_tax": amount,
            "amount_due": amount,
            "amount_paid": 0,
            "amount_remaining": amount,
            "total_taxes": [],
            "parent": None,
            "lines": {
                "object": "list",
                "url": f"/v1/invoices/{invoice_id}/lines",
                "has_more": False,
                "data": [
                    {
                        "id": world.ids.stripe("il"),
                        "object": "line_item",
                        "amount": amount,
                        "currency": price["currency"],
                        "description": None,
                        "quantity": 1,
                        "period": {"start": created, "end": created},
                        "pricing": {
                            "type": "price_details",
                            "price_details": {"price": price["id"], "product": price["product"]},
                            "unit_amount_decimal": str(amount),
                        },
                    }
                ],
            },
            "status_transitions": {"finalized_at": None, "paid_at": None, "voided_at": None},
            "metadata": {},
        },
    )
