-- Billing prices as typed columns: product, currency, unit amount in minor units, recurring
-- interval.
-- Stripe amounts become ISO 4217 minor units (billing_minor).
SELECT
    r.id AS price_id,
    r.payload->>'$.product' AS product_id,
    upper(r.payload->>'$.currency') AS currency,
    billing_minor(r.payload->>'$.unit_amount', ce.exponent - ce.billing_exponent) AS unit_amount_minor,
    r.payload->>'$.type' AS price_type,
    r.payload->>'$.recurring.interval' AS interval,
    cast(r.payload->>'$.recurring.interval_count' AS INTEGER) AS interval_count,
    coalesce(cast(r.payload->>'$.active' AS BOOLEAN), TRUE) AS is_active,
    unix_to_utc(r.payload->>'$.created') AS created_at,
    coalesce(r.deleted, FALSE) AS is_deleted
FROM {{ source('raw', 'billing_price') }} AS r
LEFT JOIN seeds.currency_exponents AS ce ON ce.currency = upper(r.payload->>'$.currency')
