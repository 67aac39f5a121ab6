-- Pre-orchestration checks of master data, one row per problem found: account hierarchy,
-- legal entity and its ERP subsidiary, tax jurisdiction, SKU alignment across the three
-- catalogs, contract metadata on won deals; and every canonical record quarantined because it
-- broke its pandera model, so a person sees what could not be reconciled and why.
with recursive accounts as (
    select * from {{ ref('customer') }} where source_system = 'crm' and not is_deleted
),

-- The ERP's subsidiaries decide which entities can post.
entity_codes as (
    select distinct legal_entity from {{ ref('legal_entity_subsidiary') }}
),

-- Walk up each account's parents; bounded so a cycle ends.
ancestry(start_id, current_id, depth) as (
    select source_id, parent_id, 1 from accounts where parent_id is not null
    union all
    select w.start_id, a.parent_id, w.depth + 1
    from ancestry as w
    inner join accounts as a on a.source_id = w.current_id
    where a.parent_id is not null and w.current_id <> w.start_id and w.depth < 64
),

won_opportunities as (
    select * from {{ ref('contract') }} where is_closed and is_won and not is_deleted
),

used_skus as (
    select l.sku, 'an opportunity' as used_on
    from {{ ref('contract_line') }} as l
    inner join {{ ref('contract') }} as o on o.source_id = l.opportunity_id and not o.is_deleted
    where not l.is_deleted and l.sku is not null
    union
    select sku, 'a ' || source_system || ' invoice' from {{ ref('invoice_line') }}
    where sku is not null
),

catalog as (
    select distinct source_system, sku from {{ ref('product') }}
    where not is_deleted and sku is not null
),

systems as (
    select unnest(['crm', 'billing', 'erp']) as source_system
)

select 'account_parent_missing' as rule, 'customer' as entity, 'crm' as source_system,
    a.source_id, 'parent_id' as field,
    'parent account ' || a.parent_id || ' does not exist' as detail
from accounts as a
where a.parent_id is not null
    and not exists (select 1 from accounts as p where p.source_id = a.parent_id)

union all

select distinct 'account_hierarchy_cycle', 'customer', 'crm', start_id, 'parent_id',
    'account is its own ancestor ' || depth || ' levels up'
from ancestry
where current_id = start_id

union all

select 'legal_entity_missing', 'customer', 'crm', source_id, 'legal_entity',
    'account has no legal entity'
from accounts
where legal_entity is null

union all

select 'legal_entity_unmapped', 'customer', 'crm', a.source_id, 'legal_entity',
    'legal entity ' || a.legal_entity || ' maps to no ERP subsidiary'
from accounts as a
where a.legal_entity is not null
    and upper(a.legal_entity) not in (select legal_entity from entity_codes)

union all

select 'tax_jurisdiction_missing', 'customer', 'crm', source_id, 'tax_jurisdiction',
    'account has no tax jurisdiction'
from accounts
where tax_jurisdiction is null

union all

select 'sku_unaligned', 'product', s.source_system, u.sku, 'sku',
    'SKU ' || u.sku || ' used on ' || min(u.used_on) || ' has no product in ' || s.source_system
from used_skus as u
cross join systems as s
where not exists (
    select 1 from catalog as c where c.source_system = s.source_system and c.sku = u.sku
)
group by s.source_system, u.sku

union all

select 'contract_term_missing', 'contract', 'crm', source_id, 'term_months',
    'closed-won opportunity has no contract term'
from won_opportunities
where term_months is null or term_months <= 0

union all

select 'contract_start_missing', 'contract', 'crm', source_id, 'start_date',
    case when contract_id is null then 'closed-won opportunity has no contract'
        else 'contract ' || contract_id || ' has no start date' end
from won_opportunities
where start_date is null

union all

select 'record_quarantined', q.table_name, q.source_system, q.source_id,
    min(q.column_name),
    string_agg(
        coalesce(q.column_name, 'row') || ': ' || q.rule || ' (value ' || coalesce(q.value, 'null') || ')',
        '; ' order by q.column_name, q.rule
    )
from {{ source('canonical', 'quarantine') }} as q
where q.table_name <> 'validation_issue'
    and q.source_system is not null and q.source_id is not null
group by q.table_name, q.source_system, q.source_id
