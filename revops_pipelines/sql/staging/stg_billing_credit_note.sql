-- Billing credit notes as typed columns: the invoice and customer credited, total in minor units,
-- status.
-- Stripe amounts become ISO 4217 minor units (billing_minor).
SELECT
    r.id AS credit_note_id,
    r.payload->>'$.invoice' AS invoice_id,
    r.payload->>'$.customer' AS customer_id,
    upper(r.payload->>'$.currency') AS currency,
    billing_minor(r.payload->>'$.total', ce.exponent - ce.billing_exponent) AS total_minor,
    r.payload->>'$.status' AS status,
    r.payload->>'$.reason' AS reason,
    unix_to_utc(r.payload->>'$.created') AS created_at,
    coalesce(r.deleted, FALSE) AS is_deleted
FROM {{ source('raw', 'billing_credit_note') }} AS r
LEFT JOIN seeds.currency_exponents AS ce ON ce.currency = upper(r.payload->>'$.currency')
