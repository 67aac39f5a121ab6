-- ERP subsidiaries (the legal entities that post): country, base currency, legal entity code.
select
    r.id as subsidiary_id,
    r.payload->>'$.name' as name,
    blank_null(r.payload->>'$.country') as country,
    c.currency,
    blank_null(r.payload->>'$.custrecord_legal_entity_code') as legal_entity,
    cast(r.payload->>'$.lastmodifieddate' as timestamptz) as updated_at,
    coalesce(r.deleted, false) as is_deleted
from {{ source('raw', 'erp_subsidiary') }} as r
left join {{ ref('stg_erp_currency') }} as c on c.currency_id = r.payload->>'$.currency'
