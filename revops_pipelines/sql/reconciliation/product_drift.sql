-- A SKU used anywhere (catalog, opportunity line, invoice line) with no live product in a system:
-- one finding per SKU and system where it is missing.
WITH prod AS (
    SELECT source_system, source_id, upper(trim(sku)) AS sku_key
    FROM {{ ref('product') }}
    WHERE NOT coalesce(is_deleted, FALSE) AND nullif(trim(sku), '') IS NOT NULL
),

used AS (
    SELECT upper(trim(sku)) AS sku_key, min(trim(sku)) AS sku
    FROM (
        SELECT sku FROM {{ ref('product') }} WHERE NOT coalesce(is_deleted, FALSE)
        UNION ALL
        SELECT l.sku
        FROM {{ ref('contract_line') }} AS l
        JOIN {{ ref('contract') }} AS o ON o.source_id = l.opportunity_id
        WHERE NOT coalesce(l.is_deleted, FALSE) AND NOT coalesce(o.is_deleted, FALSE)
        UNION ALL
        SELECT sku FROM {{ ref('invoice_line') }}
    )
    WHERE nullif(trim(sku), '') IS NOT NULL
    GROUP BY ALL
),

present AS (
    SELECT
        sku_key,
        min(source_id) FILTER (WHERE source_system = 'crm') AS crm_id,
        min(source_id) FILTER (WHERE source_system = 'billing') AS billing_id,
        min(source_id) FILTER (WHERE source_system = 'erp') AS erp_id
    FROM prod
    GROUP BY sku_key
),

missing AS (
    SELECT u.sku, s.system, p.crm_id, p.billing_id, p.erp_id
    FROM used AS u
    CROSS JOIN (VALUES ('crm'), ('billing'), ('erp')) AS s(system)
    LEFT JOIN present AS p ON p.sku_key = u.sku_key
    WHERE CASE s.system
        WHEN 'crm' THEN p.crm_id
        WHEN 'billing' THEN p.billing_id
        ELSE p.erp_id
    END IS NULL
)

SELECT
    'product_unmapped' AS drift_type, 'product' AS entity,
    crm_id, billing_id, erp_id, 'sku' AS field,
    sku AS expected, NULL AS actual, NULL::BIGINT AS amount_impact_minor, NULL AS currency,
    'review' AS action,
    'Create SKU ' || sku || ' in ' || system || ' (or map it); posting of its lines is blocked' AS suggested_action,
    NULL::VARCHAR AS correlation_id,
    system AS key_extra
FROM missing
