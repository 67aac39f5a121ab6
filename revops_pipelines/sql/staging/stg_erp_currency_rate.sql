-- ERP exchange rates: one unit of `currency` is worth `rate` units of `base_currency`
-- from `effective_date` on; the report converts money at stake with them.
select
    r.id as rate_id,
    b.currency as base_currency,
    t.currency as currency,
    try_cast(r.payload->>'$.exchangerate' as double) as rate,
    try_cast(r.payload->>'$.effectivedate' as date) as effective_date
from {{ source('raw', 'erp_currency_rate') }} as r
left join {{ ref('stg_erp_currency') }} as b on b.currency_id = r.payload->>'$.basecurrency'
left join {{ ref('stg_erp_currency') }} as t on t.currency_id = r.payload->>'$.transactioncurrency'
where not coalesce(r.deleted, false)
