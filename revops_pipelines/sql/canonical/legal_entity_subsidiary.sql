-- Which legal entity each ERP subsidiary posts for, as the ERP says it
-- (subsidiary.custrecord_legal_entity_code). The override seed may only fill in a live
-- subsidiary the ERP leaves without a code; it never replaces or adds to the ERP's answer.
WITH subsidiaries AS (
    SELECT subsidiary_id, upper(legal_entity) AS legal_entity
    FROM {{ ref('stg_erp_subsidiary') }}
    WHERE NOT is_deleted
),

overrides AS (
    SELECT
        trim(cast(erp_subsidiary_id AS VARCHAR)) AS subsidiary_id,
        upper(blank_null(legal_entity)) AS legal_entity
    FROM seeds.legal_entity_overrides
)

SELECT subsidiary_id, legal_entity, 'erp' AS origin
FROM subsidiaries
WHERE legal_entity IS NOT NULL

UNION ALL

SELECT s.subsidiary_id, o.legal_entity, 'override'
FROM subsidiaries AS s
INNER JOIN overrides AS o ON o.subsidiary_id = s.subsidiary_id
WHERE s.legal_entity IS NULL AND o.legal_entity IS NOT NULL
