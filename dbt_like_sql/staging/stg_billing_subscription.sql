select
    r.id as subscription_id,
    r.payload->>'$.customer' as customer_id,
    r.payload->>'$.status' as status,
    upper(r.payload->>'$.currency') as currency,
    unix_to_utc(r.payload->>'$.created') as created_at,
    unix_to_utc(r.payload->>'$.start_date') as start_date,
    unix_to_utc(r.payload->>'$.canceled_at') as canceled_at,
    unix_to_utc(r.payload->>'$.ended_at') as ended_at,
    coalesce(cast(r.payload->>'$.cancel_at_period_end' as boolean), false) as cancel_at_period_end,
    blank_null(r.payload->>'$.metadata.crm_opportunity_id') as crm_opportunity_id,
    coalesce(r.deleted, false) as is_deleted
from {{ source('raw', 'billing_subscriptions') }} as r
