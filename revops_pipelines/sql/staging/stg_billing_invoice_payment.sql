-- Billing invoice payments as typed columns: the invoice paid, amount paid and requested, status,
-- paid time.
-- Stripe amounts become ISO 4217 minor units (billing_minor); amount_paid is null until the
-- payment is paid.
WITH parsed AS (
    SELECT
        id,
        coalesce(deleted, FALSE) AS is_deleted,
        from_json(
            payload,
            '{"invoice": "VARCHAR", "amount_paid": "VARCHAR", "amount_requested": "VARCHAR",
              "currency": "VARCHAR", "status": "VARCHAR", "is_default": "BOOLEAN",
              "payment": {"payment_intent": "VARCHAR"}, "created": "BIGINT",
              "status_transitions": {"paid_at": "BIGINT", "canceled_at": "BIGINT"}}'
        ) AS p
    FROM {{ source('raw', 'billing_invoice_payment') }}
)

SELECT
    id AS invoice_payment_id,
    p.invoice AS invoice_id,
    billing_minor(p.amount_paid, ce.exponent - ce.billing_exponent) AS amount_paid_minor,
    billing_minor(p.amount_requested, ce.exponent - ce.billing_exponent) AS amount_requested_minor,
    upper(p.currency) AS currency,
    p.status,
    coalesce(p.is_default, FALSE) AS is_default,
    p.payment.payment_intent AS payment_intent_id,
    unix_to_utc(p.status_transitions.paid_at) AS paid_at,
    unix_to_utc(p.status_transitions.canceled_at) AS canceled_at,
    unix_to_utc(p.created) AS created_at,
    is_deleted
FROM parsed
LEFT JOIN seeds.currency_exponents AS ce ON ce.currency = upper(p.currency)
