-- Billing prices as typed columns: product, currency, unit amount in minor units, recurring
-- interval.
-- Stripe amounts become ISO 4217 minor units (billing_minor).
select
    r.id as price_id,
    r.payload->>'$.product' as product_id,
    upper(r.payload->>'$.currency') as currency,
    billing_minor(r.payload->>'$.unit_amount', ce.exponent - ce.billing_exponent) as unit_amount_minor,
    r.payload->>'$.type' as price_type,
    r.payload->>'$.recurring.interval' as interval,
    cast(r.payload->>'$.recurring.interval_count' as integer) as interval_count,
    coalesce(cast(r.payload->>'$.active' as boolean), true) as is_active,
    unix_to_utc(r.payload->>'$.created') as created_at,
    coalesce(r.deleted, false) as is_deleted
from {{ source('raw', 'billing_price') }} as r
left join seeds.currency_exponents as ce on ce.currency = upper(r.payload->>'$.currency')
