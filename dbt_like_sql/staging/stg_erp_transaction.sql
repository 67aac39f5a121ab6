-- ERP invoices, payments and credit memos (one id space); money in the row's currency.
with rows as (
    select id, payload, deleted from {{ source('raw', 'erp_invoice') }}
    union all
    select id, payload, deleted from {{ source('raw', 'erp_customerpayment') }}
    union all
    select id, payload, deleted from {{ source('raw', 'erp_creditmemo') }}
)

select
    r.id as transaction_id,
    r.payload->>'$.type' as transaction_type,
    r.payload->>'$.tranid' as tranid,
    cast(r.payload->>'$.trandate' as date) as trandate,
    blank_null(r.payload->>'$.entity') as entity_id,
    blank_null(r.payload->>'$.subsidiary') as subsidiary_id,
    c.currency,
    coalesce(ce.exponent, 2) as currency_exponent,
    blank_null(r.payload->>'$.externalid') as externalid,
    to_minor(r.payload->>'$.foreigntotal', coalesce(ce.exponent, 2)) as total_minor,
    to_minor(r.payload->>'$.foreigntaxtotal', coalesce(ce.exponent, 2)) as tax_minor,
    to_minor(r.payload->>'$.foreignamountremaining', coalesce(ce.exponent, 2))
        as amount_remaining_minor,
    blank_null(r.payload->>'$.status') as status,
    blank_null(r.payload->>'$.custbody_billing_subscription_id') as billing_subscription_id,
    cast(r.payload->>'$.datecreated' as timestamptz) as created_at,
    cast(r.payload->>'$.lastmodifieddate' as timestamptz) as updated_at,
    coalesce(r.deleted, false) as is_deleted
from rows as r
left join {{ ref('stg_erp_currency') }} as c on c.currency_id = r.payload->>'$.currency'
left join seeds.currency_exponents as ce on ce.currency = c.currency
