-- Which legal entity each ERP subsidiary posts for, as the ERP says it
-- (subsidiary.custrecord_legal_entity_code). The override seed may only fill in a live
-- subsidiary the ERP leaves without a code; it never replaces or adds to the ERP's answer.
with subsidiaries as (
    select subsidiary_id, upper(legal_entity) as legal_entity
    from {{ ref('stg_erp_subsidiary') }}
    where not is_deleted
),

overrides as (
    select
        trim(cast(erp_subsidiary_id as varchar)) as subsidiary_id,
        upper(blank_null(legal_entity)) as legal_entity
    from seeds.legal_entity_overrides
)

select subsidiary_id, legal_entity, 'erp' as origin
from subsidiaries
where legal_entity is not null

union all

select s.subsidiary_id, o.legal_entity, 'override'
from subsidiaries as s
inner join overrides as o on o.subsidiary_id = s.subsidiary_id
where s.legal_entity is null and o.legal_entity is not null
