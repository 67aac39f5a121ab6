-- ERP exchange rates: one unit of `currency` is worth `rate` units of `base_currency`
-- from `effective_date` on; the report converts money at stake with them.
SELECT
    r.id AS rate_id,
    b.currency AS base_currency,
    t.currency AS currency,
    try_cast(r.payload->>'$.exchangerate' AS DOUBLE) AS rate,
    try_cast(r.payload->>'$.effectivedate' AS DATE) AS effective_date
FROM {{ source('raw', 'erp_currency_rate') }} AS r
LEFT JOIN {{ ref('stg_erp_currency') }} AS b ON b.currency_id = r.payload->>'$.basecurrency'
LEFT JOIN {{ ref('stg_erp_currency') }} AS t ON t.currency_id = r.payload->>'$.transactioncurrency'
WHERE NOT coalesce(r.deleted, FALSE)
