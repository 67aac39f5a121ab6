-- ERP customers (SuiteQL rows): externalid is the billing customer id.
select
    r.id as customer_id,
    blank_null(r.payload->>'$.externalid') as billing_customer_id,
    r.payload->>'$.entityid' as entity_id,
    blank_null(r.payload->>'$.companyname') as name,
    normalize_text(r.payload->>'$.companyname') as name_norm,
    blank_null(r.payload->>'$.email') as email,
    normalize_text(blank_null(r.payload->>'$.email')) as email_norm,
    blank_null(r.payload->>'$.subsidiary') as subsidiary_id,
    c.currency,
    blank_null(r.payload->>'$.custentity_crm_account_id') as crm_account_id,
    blank_null(r.payload->>'$.custentity_tax_jurisdiction') as tax_jurisdiction,
    coalesce(ns_bool(r.payload->>'$.isinactive'), false) as is_inactive,
    cast(r.payload->>'$.datecreated' as timestamptz) as created_at,
    cast(r.payload->>'$.lastmodifieddate' as timestamptz) as updated_at,
    coalesce(r.deleted, false) as is_deleted
from {{ source('raw', 'erp_customer') }} as r
left join {{ ref('stg_erp_currency') }} as c on c.currency_id = r.payload->>'$.currency'
