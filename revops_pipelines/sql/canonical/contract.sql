-- One row per CRM opportunity with its contract (the latest live one when there are several).
with contracts as (
    select *
    from {{ ref('stg_crm_contract') }}
    where opportunity_id is not null
    qualify row_number() over (
        partition by opportunity_id
        order by is_deleted, updated_at desc nulls last, contract_id desc
    ) = 1
)

select
    'crm' as source_system,
    o.opportunity_id as source_id,
    o.account_id,
    o.name as opportunity_name,
    o.stage,
    o.is_closed,
    o.is_won,
    o.close_date,
    o.amount_minor,
    o.currency,
    o.term_months,
    cast(o.amount_minor / nullif(o.term_months, 0) as decimal(24, 6)) as mrr_minor,
    o.billing_subscription_id,
    c.contract_id,
    c.status as contract_status,
    c.start_date,
    c.end_date,
    o.is_deleted
from {{ ref('stg_crm_opportunity') }} as o
left join contracts as c on c.opportunity_id = o.opportunity_id
