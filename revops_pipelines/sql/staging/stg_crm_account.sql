-- CRM accounts, typed; tombstones kept with is_deleted for history.
-- Each payload is parsed once into a struct of texts (as `->>` would read each field).
with parsed as (
    select
        id,
        deleted,
        from_json(
            payload,
            '{"Name": "VARCHAR", "ParentId": "VARCHAR", "BillingCountry": "VARCHAR",
              "CurrencyIsoCode": "VARCHAR", "Legal_Entity__c": "VARCHAR",
              "Tax_Jurisdiction__c": "VARCHAR", "Billing_Customer_Id__c": "VARCHAR",
              "IsDeleted": "VARCHAR", "CreatedDate": "VARCHAR", "LastModifiedDate": "VARCHAR",
              "SystemModstamp": "VARCHAR"}'
        ) as p
    from {{ source('raw', 'crm_account') }}
)

select
    r.id as account_id,
    blank_null(r.p.Name) as name,
    normalize_text(r.p.Name) as name_norm,
    blank_null(r.p.ParentId) as parent_id,
    blank_null(r.p.BillingCountry) as country,
    upper(blank_null(r.p.BillingCountry)) as country_norm,
    upper(blank_null(r.p.CurrencyIsoCode)) as currency,
    blank_null(r.p.Legal_Entity__c) as legal_entity,
    blank_null(r.p.Tax_Jurisdiction__c) as tax_jurisdiction,
    blank_null(r.p.Billing_Customer_Id__c) as billing_customer_id,
    coalesce(r.deleted, false) or coalesce(sf_bool(r.p.IsDeleted), false) as is_deleted,
    cast(r.p.CreatedDate as timestamptz) as created_at,
    cast(coalesce(r.p.LastModifiedDate, r.p.SystemModstamp) as timestamptz) as updated_at
from parsed as r
