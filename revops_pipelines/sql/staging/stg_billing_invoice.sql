-- Billing invoices; tax is the sum of total_taxes[].amount (the API has no tax field).
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
    from {{ source('raw', 'billing_invoices') }} as r
)

select
    id as invoice_id,
    p.customer as customer_id,
    coalesce(p.parent.subscription_details.subscription, p.subscription) as subscription_id,
    p.number,
    p.status,
    upper(p.currency) as currency,
    cast(cast(p.subtotal as decimal(38, 0)) as bigint) as subtotal_minor,
    cast(
        coalesce(list_sum(list_transform(p.total_taxes, lambda t: cast(t.amount as decimal(38, 0)))), 0)
        as bigint
    ) as tax_minor,
    cast(cast(p.total as decimal(38, 0)) as bigint) as total_minor,
    cast(cast(p.amount_due as decimal(38, 0)) as bigint) as amount_due_minor,
    cast(cast(p.amount_paid as decimal(38, 0)) as bigint) as amount_paid_minor,
    cast(cast(p.amount_remaining as decimal(38, 0)) as bigint) as amount_remaining_minor,
    unix_to_utc(p.created) as created_at,
    unix_to_utc(p.period_start) as period_start,
    unix_to_utc(p.period_end) as period_end,
    unix_to_utc(p.status_transitions.finalized_at) as finalized_at,
    unix_to_utc(p.status_transitions.paid_at) as paid_at,
    unix_to_utc(p.status_transitions.voided_at) as voided_at,
    p.status_transitions.finalized_at is not null as is_finalized,
    is_deleted,
    p.lines
from parsed
