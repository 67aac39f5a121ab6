-- ERP subsidiaries (the legal entities that post): country, base currency, legal entity code.
SELECT
    r.id AS subsidiary_id,
    r.payload->>'$.name' AS name,
    blank_null(r.payload->>'$.country') AS country,
    c.currency,
    blank_null(r.payload->>'$.custrecord_legal_entity_code') AS legal_entity,
    cast(r.payload->>'$.lastmodifieddate' AS TIMESTAMPTZ) AS updated_at,
    coalesce(r.deleted, FALSE) AS is_deleted
FROM {{ source('raw', 'erp_subsidiary') }} AS r
LEFT JOIN {{ ref('stg_erp_currency') }} AS c ON c.currency_id = r.payload->>'$.currency'
