-- CRM opportunities; Amount (total contract value, major units) as exact minor units.
-- Each payload is parsed once into a struct of texts (as `->>` would read each field).
WITH parsed AS (
    SELECT
        id,
        deleted,
        from_json(
            payload,
            '{"AccountId": "VARCHAR", "Name": "VARCHAR", "StageName": "VARCHAR",
              "IsClosed": "VARCHAR", "IsWon": "VARCHAR", "CloseDate": "VARCHAR",
              "Amount": "VARCHAR", "CurrencyIsoCode": "VARCHAR", "Type": "VARCHAR",
              "Contract_Term_Months__c": "VARCHAR", "Billing_Subscription_Id__c": "VARCHAR",
              "IsDeleted": "VARCHAR", "CreatedDate": "VARCHAR", "LastModifiedDate": "VARCHAR",
              "SystemModstamp": "VARCHAR"}'
        ) AS p
    FROM {{ source('raw', 'crm_opportunity') }}
)

SELECT
    r.id AS opportunity_id,
    blank_null(r.p.AccountId) AS account_id,
    r.p.Name AS name,
    r.p.StageName AS stage,
    coalesce(sf_bool(r.p.IsClosed), FALSE) AS is_closed,
    coalesce(sf_bool(r.p.IsWon), FALSE) AS is_won,
    cast(r.p.CloseDate AS DATE) AS close_date,
    to_minor(r.p.Amount, coalesce(ce.exponent, 2)) AS amount_minor,
    upper(blank_null(r.p.CurrencyIsoCode)) AS currency,
    coalesce(ce.exponent, 2) AS currency_exponent,
    r.p.Type AS opportunity_type,
    cast(cast(r.p.Contract_Term_Months__c AS DECIMAL(18, 4)) AS INTEGER) AS term_months,
    blank_null(r.p.Billing_Subscription_Id__c) AS billing_subscription_id,
    coalesce(r.deleted, FALSE) OR coalesce(sf_bool(r.p.IsDeleted), FALSE) AS is_deleted,
    cast(r.p.CreatedDate AS TIMESTAMPTZ) AS created_at,
    cast(coalesce(r.p.LastModifiedDate, r.p.SystemModstamp) AS TIMESTAMPTZ) AS updated_at
FROM parsed AS r
LEFT JOIN seeds.currency_exponents AS ce ON ce.currency = upper(r.p.CurrencyIsoCode)
