-- ERP currencies: the internal id each ERP record uses, with its ISO code and name.
SELECT
    r.id AS currency_id,
    upper(r.payload->>'$.symbol') AS currency,
    r.payload->>'$.name' AS name
FROM {{ source('raw', 'erp_currency') }} AS r
WHERE NOT coalesce(r.deleted, FALSE)
