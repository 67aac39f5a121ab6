-- CRM accounts, typed; tombstones kept with is_deleted for history.
-- Each payload is parsed once into a struct of texts (as `->>` would read each field).
WITH parsed AS (
    SELECT
        id,
        deleted,
        from_json(
            payload,
            '{"Name": "VARCHAR", "ParentId": "VARCHAR", "BillingCountry": "VARCHAR",
              "CurrencyIsoCode": "VARCHAR", "Legal_Entity__c": "VARCHAR",
              "Tax_Jurisdiction__c": "VARCHAR", "Billing_Customer_Id__c": "VARCHAR",
              "IsDeleted": "VARCHAR", "CreatedDate": "VARCHAR", "LastModifiedDate": "VARCHAR",
              "SystemModstamp": "VARCHAR"}'
        ) AS p
    FROM {{ source('raw', 'crm_account') }}
)

SELECT
    r.id AS account_id,
    blank_null(r.p.Name) AS name,
    normalize_text(r.p.Name) AS name_norm,
    blank_null(r.p.ParentId) AS parent_id,
    blank_null(r.p.BillingCountry) AS country,
    upper(blank_null(r.p.BillingCountry)) AS country_norm,
    upper(blank_null(r.p.CurrencyIsoCode)) AS currency,
    blank_null(r.p.Legal_Entity__c) AS legal_entity,
    blank_null(r.p.Tax_Jurisdiction__c) AS tax_jurisdiction,
    blank_null(r.p.Billing_Customer_Id__c) AS billing_customer_id,
    coalesce(r.deleted, FALSE) OR coalesce(sf_bool(r.p.IsDeleted), FALSE) AS is_deleted,
    cast(r.p.CreatedDate AS TIMESTAMPTZ) AS created_at,
    cast(coalesce(r.p.LastModifiedDate, r.p.SystemModstamp) AS TIMESTAMPTZ) AS updated_at
FROM parsed AS r
