-- ERP customers (SuiteQL rows): externalid is the billing customer id.
-- Each payload is parsed once into a struct of texts (as `->>` would read each field).
with parsed as (
    select
        id,
        deleted,
        from_json(
            payload,
            '{"externalid": "VARCHAR", "entityid": "VARCHAR", "companyname": "VARCHAR",
              "email": "VARCHAR", "subsidiary": "VARCHAR", "currency": "VARCHAR",
              "custentity_crm_account_id": "VARCHAR", "custentity_tax_jurisdiction": "VARCHAR",
              "isinactive": "VARCHAR", "datecreated": "VARCHAR", "lastmodifieddate": "VARCHAR"}'
        ) as p
    from {{ source('raw', 'erp_customer') }}
)

select
    r.id as customer_id,
    blank_null(r.p.externalid) as billing_customer_id,
    r.p.entityid as entity_id,
    blank_null(r.p.companyname) as name,
    normalize_text(r.p.companyname) as name_norm,
    blank_null(r.p.email) as email,
    normalize_text(blank_null(r.p.email)) as email_norm,
    blank_null(r.p.subsidiary) as subsidiary_id,
    c.currency,
    blank_null(r.p.custentity_crm_account_id) as crm_account_id,
    blank_null(r.p.custentity_tax_jurisdiction) as tax_jurisdiction,
    coalesce(ns_bool(r.p.isinactive), false) as is_inactive,
    cast(r.p.datecreated as timestamptz) as created_at,
    cast(r.p.lastmodifieddate as timestamptz) as updated_at,
    coalesce(r.deleted, false) as is_deleted
from parsed as r
left join {{ ref('stg_erp_currency') }} as c on c.currency_id = r.p.currency
