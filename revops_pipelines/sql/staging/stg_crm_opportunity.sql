-- CRM opportunities; Amount (total contract value, major units) as exact minor units.
-- Each payload is parsed once into a struct of texts (as `->>` would read each field).
with parsed as (
    select
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
        ) as p
    from {{ source('raw', 'crm_opportunity') }}
)

select
    r.id as opportunity_id,
    blank_null(r.p.AccountId) as account_id,
    r.p.Name as name,
    r.p.StageName as stage,
    coalesce(sf_bool(r.p.IsClosed), false) as is_closed,
    coalesce(sf_bool(r.p.IsWon), false) as is_won,
    cast(r.p.CloseDate as date) as close_date,
    to_minor(r.p.Amount, coalesce(ce.exponent, 2)) as amount_minor,
    upper(blank_null(r.p.CurrencyIsoCode)) as currency,
    coalesce(ce.exponent, 2) as currency_exponent,
    r.p.Type as opportunity_type,
    cast(cast(r.p.Contract_Term_Months__c as decimal(18, 4)) as integer) as term_months,
    blank_null(r.p.Billing_Subscription_Id__c) as billing_subscription_id,
    coalesce(r.deleted, false) or coalesce(sf_bool(r.p.IsDeleted), false) as is_deleted,
    cast(r.p.CreatedDate as timestamptz) as created_at,
    cast(coalesce(r.p.LastModifiedDate, r.p.SystemModstamp) as timestamptz) as updated_at
from parsed as r
left join seeds.currency_exponents as ce on ce.currency = upper(r.p.CurrencyIsoCode)
