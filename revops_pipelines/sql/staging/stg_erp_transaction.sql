-- ERP invoices, payments and credit memos (one id space); money in the row's currency.
-- Each payload is parsed once into a struct; numbers are read as text for exact decimals.
-- The stream a row came from gives its type when the row itself does not carry one.
with rows as (
    select id, payload, deleted, 'CustInvc' as stream_type
    from {{ source('raw', 'erp_invoice') }}
    union all
    select id, payload, deleted, 'CustPymt' from {{ source('raw', 'erp_customer_payment') }}
    union all
    select id, payload, deleted, 'CustCred' from {{ source('raw', 'erp_credit_memo') }}
),

parsed as (
    select
        id,
        coalesce(deleted, false) as is_deleted,
        stream_type,
        from_json(
            payload,
            '{"type": "VARCHAR", "tranid": "VARCHAR", "trandate": "VARCHAR", "entity": "VARCHAR",
              "subsidiary": "VARCHAR", "currency": "VARCHAR", "externalid": "VARCHAR",
              "foreigntotal": "VARCHAR", "foreigntaxtotal": "VARCHAR",
              "foreignamountremaining": "VARCHAR", "status": "VARCHAR",
              "custbody_billing_subscription_id": "VARCHAR", "datecreated": "VARCHAR",
              "lastmodifieddate": "VARCHAR"}'
        ) as p
    from rows
)

select
    r.id as transaction_id,
    coalesce(r.p.type, r.stream_type) as transaction_type,
    r.p.tranid,
    cast(r.p.trandate as date) as trandate,
    blank_null(r.p.entity) as entity_id,
    blank_null(r.p.subsidiary) as subsidiary_id,
    c.currency,
    coalesce(ce.exponent, 2) as currency_exponent,
    blank_null(r.p.externalid) as externalid,
    to_minor(r.p.foreigntotal, coalesce(ce.exponent, 2)) as total_minor,
    to_minor(r.p.foreigntaxtotal, coalesce(ce.exponent, 2)) as tax_minor,
    to_minor(r.p.foreignamountremaining, coalesce(ce.exponent, 2)) as amount_remaining_minor,
    blank_null(r.p.status) as status,
    blank_null(r.p.custbody_billing_subscription_id) as billing_subscription_id,
    cast(r.p.datecreated as timestamptz) as created_at,
    cast(r.p.lastmodifieddate as timestamptz) as updated_at,
    r.is_deleted
from parsed as r
left join {{ ref('stg_erp_currency') }} as c on c.currency_id = r.p.currency
left join seeds.currency_exponents as ce on ce.currency = c.currency
