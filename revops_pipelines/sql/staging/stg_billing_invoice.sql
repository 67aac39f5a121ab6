-- Billing invoices; tax is the sum of total_taxes[].amount (the API has no tax field).
-- Money in ISO 4217 minor units (billing_minor): Stripe's own exponent differs for a few
-- currencies; `minor_shift` carries it to the lines.
-- `lines` is the parsed lines object, unnested by stg_billing_invoice_line: one parse per payload.
WITH parsed AS (
    SELECT
        r.id,
        coalesce(r.deleted, FALSE) AS is_deleted,
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
        ) AS p
    FROM {{ source('raw', 'billing_invoice') }} AS r
)

SELECT
    id AS invoice_id,
    p.customer AS customer_id,
    coalesce(p.parent.subscription_details.subscription, p.subscription) AS subscription_id,
    p.number,
    p.status,
    upper(p.currency) AS currency,
    billing_minor(p.subtotal, shift) AS subtotal_minor,
    billing_minor(
        coalesce(list_sum(list_transform(p.total_taxes, LAMBDA t: cast(t.amount AS DECIMAL(38, 0)))), 0),
        shift
    ) AS tax_minor,
    billing_minor(p.total, shift) AS total_minor,
    billing_minor(p.amount_due, shift) AS amount_due_minor,
    billing_minor(p.amount_paid, shift) AS amount_paid_minor,
    billing_minor(p.amount_remaining, shift) AS amount_remaining_minor,
    unix_to_utc(p.created) AS created_at,
    unix_to_utc(p.period_start) AS period_start,
    unix_to_utc(p.period_end) AS period_end,
    unix_to_utc(p.status_transitions.finalized_at) AS finalized_at,
    unix_to_utc(p.status_transitions.paid_at) AS paid_at,
    unix_to_utc(p.status_transitions.voided_at) AS voided_at,
    p.status_transitions.finalized_at IS NOT NULL AS is_finalized,
    is_deleted,
    shift AS minor_shift,
    p.lines
FROM (
    SELECT parsed.*, ce.exponent - ce.billing_exponent AS shift
    FROM parsed
    LEFT JOIN seeds.currency_exponents AS ce ON ce.currency = upper(parsed.p.currency)
)
