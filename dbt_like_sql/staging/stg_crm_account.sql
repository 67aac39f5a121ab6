-- CRM accounts, typed; tombstones kept with is_deleted for history.
select
    r.id as account_id,
    blank_null(r.payload->>'$.Name') as name,
    normalize_text(r.payload->>'$.Name') as name_norm,
    blank_null(r.payload->>'$.ParentId') as parent_id,
    blank_null(r.payload->>'$.BillingCountry') as country,
    upper(blank_null(r.payload->>'$.BillingCountry')) as country_norm,
    upper(blank_null(r.payload->>'$.CurrencyIsoCode')) as currency,
    blank_null(r.payload->>'$.Legal_Entity__c') as legal_entity,
    blank_null(r.payload->>'$.Tax_Jurisdiction__c') as tax_jurisdiction,
    blank_null(r.payload->>'$.Billing_Customer_Id__c') as billing_customer_id,
    coalesce(r.deleted, false) or coalesce(sf_bool(r.payload->>'$.IsDeleted'), false) as is_deleted,
    cast(r.payload->>'$.CreatedDate' as timestamptz) as created_at,
    cast(coalesce(r.payload->>'$.LastModifiedDate', r.payload->>'$.SystemModstamp') as timestamptz)
        as updated_at
from {{ source('raw', 'crm_account') }} as r
