-- Billing invoice payments as typed columns: the invoice paid, amount paid and requested, status,
-- paid time.
-- Stripe amounts become ISO 4217 minor units (billing_minor); amount_paid is null until the
-- payment is paid.
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
    from {{ source('raw', 'billing_invoice_payment') }}
)

select
    id as invoice_payment_id,
    p.invoice as invoice_id,
    billing_minor(p.amount_paid, ce.exponent - ce.billing_exponent) as amount_paid_minor,
    billing_minor(p.amount_requested, ce.exponent - ce.billing_exponent) as amount_requested_minor,
    upper(p.currency) as currency,
    p.status,
    coalesce(p.is_default, false) as is_default,
    p.payment.payment_intent as payment_intent_id,
    unix_to_utc(p.status_transitions.paid_at) as paid_at,
    unix_to_utc(p.status_transitions.canceled_at) as canceled_at,
    unix_to_utc(p.created) as created_at,
    is_deleted
from parsed
left join seeds.currency_exponents as ce on ce.currency = upper(p.currency)
