-- ERP currencies: the internal id each ERP record uses, with its ISO code and name.
select
    r.id as currency_id,
    upper(r.payload->>'$.symbol') as currency,
    r.payload->>'$.name' as name
from {{ source('raw', 'erp_currency') }} as r
where not coalesce(r.deleted, false)
