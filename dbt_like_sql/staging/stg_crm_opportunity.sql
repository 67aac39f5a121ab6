-- CRM opportunities; Amount (total contract value, major units) as exact minor units.
select
    r.id as opportunity_id,
    blank_null(r.payload->>'$.AccountId') as account_id,
    r.payload->>'$.Name' as name,
    r.payload->>'$.StageName' as stage,
    coalesce(sf_bool(r.payload->>'$.IsClosed'), false) as is_closed,
    coalesce(sf_bool(r.payload->>'$.IsWon'), false) as is_won,
    cast(r.payload->>'$.CloseDate' as date) as close_date,
    to_minor(r.payload->>'$.Amount', coalesce(ce.exponent, 2)) as amount_minor,
    upper(blank_null(r.payload->>'$.CurrencyIsoCode')) as currency,
    coalesce(ce.exponent, 2) as currency_exponent,
    r.payload->>'$.Type' as opportunity_type,
    cast(cast(r.payload->>'$.Contract_Term_Months__c' as decimal(18, 4)) as integer) as term_months,
    blank_null(r.payload->>'$.Billing_Subscription_Id__c') as billing_subscription_id,
    coalesce(r.deleted, false) or coalesce(sf_bool(r.payload->>'$.IsDeleted'), false) as is_deleted,
    cast(r.payload->>'$.CreatedDate' as timestamptz) as created_at,
    cast(coalesce(r.payload->>'$.LastModifiedDate', r.payload->>'$.SystemModstamp') as timestamptz)
        as updated_at
from {{ source('raw', 'crm_opportunity') }} as r
left join seeds.currency_exponents as ce
    on ce.currency = upper(r.payload->>'$.CurrencyIsoCode')
