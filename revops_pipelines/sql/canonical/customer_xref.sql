-- One row per real customer: the records the link fields join, across the three systems.
-- Links: CRM account ↔ billing customer (either side's link field), billing ↔ ERP (ERP
-- externalid), ERP ↔ CRM (custentity_crm_account_id). Deleted records are history and
-- take no part. Records joined only through others (a chain) still end in one row.
with recursive nodes as (
    select 'crm:' || account_id as node from {{ ref('stg_crm_account') }} where not is_deleted
    union all
    select 'billing:' || customer_id from {{ ref('stg_billing_customer') }} where not is_deleted
    union all
    select 'erp:' || customer_id from {{ ref('stg_erp_customer') }} where not is_deleted
),

link_fields as (
    select 'crm:' || account_id as a, 'billing:' || billing_customer_id as b
    from {{ ref('stg_crm_account') }}
    where not is_deleted and billing_customer_id is not null
    union all
    select 'billing:' || customer_id, 'crm:' || crm_account_id
    from {{ ref('stg_billing_customer') }}
    where not is_deleted and crm_account_id is not null
    union all
    select 'erp:' || customer_id, 'billing:' || billing_customer_id
    from {{ ref('stg_erp_customer') }}
    where not is_deleted and billing_customer_id is not null
    union all
    select 'erp:' || customer_id, 'crm:' || crm_account_id
    from {{ ref('stg_erp_customer') }}
    where not is_deleted and crm_account_id is not null
),

live_links as (
    select l.a, l.b
    from link_fields as l
    semi join nodes as na on na.node = l.a
    semi join nodes as nb on nb.node = l.b
),

edges as (
    select a, b from live_links
    union
    select b, a from live_links
),

reach(node, reached) as (
    select node, node from nodes
    union
    select r.node, e.b
    from reach as r
    inner join edges as e on e.a = r.reached
),

components as (
    select node, min(reached) as component
    from reach
    group by node
)

select
    component as xref_id,
    min(substr(node, 5)) filter (where node like 'crm:%') as crm_account_id,
    min(substr(node, 9)) filter (where node like 'billing:%') as billing_customer_id,
    min(substr(node, 5)) filter (where node like 'erp:%') as erp_customer_id,
    case when count(*) > 1 then 'link' else 'none' end as link_method,
    count(*) filter (where node like 'crm:%') as crm_records,
    count(*) filter (where node like 'billing:%') as billing_records,
    count(*) filter (where node like 'erp:%') as erp_records
from components
group by component
