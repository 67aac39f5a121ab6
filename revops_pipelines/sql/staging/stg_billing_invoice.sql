-- Billing invoices; tax is the sum of total_taxes[].amount (the API has no tax field).
-- Money in ISO 4217 minor units (billing_minor): Stripe's own exponent differs for a few
-- currencies; `minor_shift` carries it to the lines.
-- `lines` is the parsed lines object, unnested by stg_billing_invoice_line: one parse per payload.
with parsed as (
    select
        r.id,
        coalesce(r.deleted, false) as is_deleted,
        from_json(
            r.payload,
            '{"customer": "VARCHAR", "number": "VARCHAR", "status": "VARCHAR",
              "currency": "VARCHAR", "created": "BIGINT", "period_start": "BIGINT",
              "period_end": "BIGINT", "subtotal": "VARCHAR", "total": "VARCHAR",
              "amount_due": "VARCHAR", "amount_paid": "VARCHAR", "amount_remaining": "VARCHAR",
              "total_taxes": [{"amount": "VARCHAR"}], "subscription": "VARCHAR",
              "parent": {"subscription_details": {"subscription": "VARCHAR"}},
              "status_transitions": {"finalized_at": "BIGINT", "paid_at": "BIGINT",
                                     "voided_at": "BIGINT"},
              "lines": {"data": [{"id": "VARCHAR", "amount": "VARCHAR", "currency": "VARCHAR",
                                  "description": "VARCHAR", "quantity": "VARCHAR",
                                  "period": {"start": "BIGINT", "end": "BIGINT"},
                                  "pricing": {"price_details": {"price": "VARCHAR",
                                                                "product": "VARCHAR"}}}]}}'
        ) as p
    from {{ source('raw', 'billing_invoice') }} as r
)

select
    id as invoice_id,
    p.customer as customer_id,
    coalesce(p.parent.subscription_details.subscription, p.subscription) as subscription_id,
    p.number,
    p.status,
    upper(p.currency) as currency,
    billing_minor(p.subtotal, shift) as subtotal_minor,
    billing_minor(
        coalesce(list_sum(list_transform(p.total_taxes, lambda t: cast(t.amount as decimal(38, 0)))), 0),
        shift
    ) as tax_minor,
    billing_minor(p.total, shift) as total_minor,
    billing_minor(p.amount_due, shift) as amount_due_minor,
    billing_minor(p.amount_paid, shift) as amount_paid_minor,
    billing_minor(p.amount_remaining, shift) as amount_remaining_minor,
    unix_to_utc(p.created) as created_at,
    unix_to_utc(p.period_start) as period_start,
    unix_to_utc(p.period_end) as period_end,
    unix_to_utc(p.status_transitions.finalized_at) as finalized_at,
    unix_to_utc(p.status_transitions.paid_at) as paid_at,
    unix_to_utc(p.status_transitions.voided_at) as voided_at,
    p.status_transitions.finalized_at is not null as is_finalized,
    is_deleted,
    shift as minor_shift,
    p.lines
from (
    select parsed.*, ce.exponent - ce.billing_exponent as shift
    from parsed
    left join seeds.currency_exponents as ce on ce.currency = upper(parsed.p.currency)
)
