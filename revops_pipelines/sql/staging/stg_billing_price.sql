-- Billing prices as typed columns: product, currency, unit amount in minor units, recurring
-- interval.
select
    r.id as price_id,
    r.payload->>'$.product' as product_id,
    upper(r.payload->>'$.currency') as currency,
    cast(cast(r.payload->>'$.unit_amount' as decimal(38, 0)) as bigint) as unit_amount_minor,
    r.payload->>'$.type' as price_type,
    r.payload->>'$.recurring.interval' as interval,
    cast(r.payload->>'$.recurring.interval_count' as integer) as interval_count,
    coalesce(cast(r.payload->>'$.active' as boolean), true) as is_active,
    unix_to_utc(r.payload->>'$.created') as created_at,
    coalesce(r.deleted, false) as is_deleted
from {{ source('raw', 'billing_prices') }} as r
