-- One row per customer record in each system; the link fields as each system stores them.
-- A CRM or billing legal entity gets the ERP subsidiary that posts for it.
with subsidiary_by_entity as (
    select legal_entity, min(subsidiary_id) as subsidiary_id
    from {{ ref('legal_entity_subsidiary') }}
    group by legal_entity
)

select
    'crm' as source_system,
    a.account_id as source_id,
    a.account_id as crm_account_id,
    a.billing_customer_id,
    cast(null as varchar) as erp_customer_id,
    a.name,
    a.name_norm,
    cast(null as varchar) as email,
    cast(null as varchar) as email_norm,
    a.country_norm as country,
    a.currency,
    a.legal_entity,
    a.tax_jurisdiction,
    s.subsidiary_id as erp_subsidiary_id,
    a.parent_id,
    a.is_deleted,
    not a.is_deleted as is_active,
    a.created_at,
    a.updated_at,
    cast(null as varchar) as subsidiary_country
from {{ ref('stg_crm_account') }} as a
left join subsidiary_by_entity as s on s.legal_entity = upper(a.legal_entity)

union all

select
    'billing',
    c.customer_id,
    c.crm_account_id,
    c.customer_id,
    null,
    c.name,
    c.name_norm,
    c.email,
    c.email_norm,
    c.country_norm,
    c.currency,
    c.legal_entity,
    c.tax_jurisdiction,
    s.subsidiary_id,
    null,
    c.is_deleted,
    not c.is_deleted,
    c.created_at,
    c.created_at,
    null
from {{ ref('stg_billing_customer') }} as c
left join subsidiary_by_entity as s on s.legal_entity = upper(c.legal_entity)

union all

select
    'erp',
    c.customer_id,
    c.crm_account_id,
    c.billing_customer_id,
    c.customer_id,
    c.name,
    c.name_norm,
    c.email,
    c.email_norm,
    -- the ERP customer record has no address, so no country (subsidiary_country says where
    -- its books are kept, which is not the customer's country)
    cast(null as varchar),
    c.currency,
    e.legal_entity,
    c.tax_jurisdiction,
    c.subsidiary_id,
    null,
    c.is_deleted,
    not (c.is_deleted or c.is_inactive),
    c.created_at,
    c.updated_at,
    upper(s.country)
from {{ ref('stg_erp_customer') }} as c
left join {{ ref('stg_erp_subsidiary') }} as s on s.subsidiary_id = c.subsidiary_id
left join {{ ref('legal_entity_subsidiary') }} as e on e.subsidiary_id = c.subsidiary_id
