-- Billing invoice payments as typed columns: the invoice paid, amount paid and requested, status,
-- paid time.
with parsed as (
    select
        id,
        coalesce(deleted, false) as is_deleted,
        from_json(
            payload,
            '{"invoice": "VARCHAR", "amount_paid": "VARCHAR", "amount_requested": "VARCHAR",
              "currency": "VARCHAR", "status": "VARCHAR", "is_default": "BOOLEAN",
              "payment": {"payment_intent": "VARCHAR"}, "created": "BIGINT",
              "status_transitions": {"paid_at": "BIGINT", "canceled_at": "BIGINT"}}'
        ) as p
    from {{ source('raw', 'billing_invoice_payments') }}
)

select
    id as invoice_payment_id,
    p.invoice as invoice_id,
    cast(cast(p.amount_paid as decimal(38, 0)) as bigint) as amount_paid_minor,
    cast(cast(p.amount_requested as decimal(38, 0)) as bigint) as amount_requested_minor,
    upper(p.currency) as currency,
    p.status,
    coalesce(p.is_default, false) as is_default,
    p.payment.payment_intent as payment_intent_id,
    unix_to_utc(p.status_transitions.paid_at) as paid_at,
    unix_to_utc(p.status_transitions.canceled_at) as canceled_at,
    unix_to_utc(p.created) as created_at,
    is_deleted
from parsed
