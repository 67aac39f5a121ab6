-- Billing subscriptions; MRR is the sum of the items' monthly-normalized price × quantity.
with item_mrr as (
    select subscription_id, sum(monthly_amount_minor) as mrr_minor
    from {{ ref('stg_billing_subscription_item') }}
    group by subscription_id
)

select
    'billing' as source_system,
    s.subscription_id as source_id,
    s.customer_id,
    s.crm_opportunity_id,
    s.status,
    s.currency,
    s.created_at,
    s.start_date,
    s.canceled_at,
    s.ended_at,
    s.cancel_at_period_end,
    cast(coalesce(m.mrr_minor, 0) as decimal(24, 6)) as mrr_minor
from {{ ref('stg_billing_subscription') }} as s
left join item_mrr as m on m.subscription_id = s.subscription_id
where not s.is_deleted
