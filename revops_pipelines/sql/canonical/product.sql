-- The three catalogs side by side; the SKU is what links them.
SELECT
    'crm' AS source_system,
    product_id AS source_id,
    sku,
    name,
    is_active AND NOT is_deleted AS is_active,
    is_deleted,
    cast(NULL AS VARCHAR) AS billing_product_id
FROM {{ ref('stg_crm_product') }}

UNION ALL

SELECT 'billing', product_id, sku, name, is_active AND NOT is_deleted, is_deleted, product_id
FROM {{ ref('stg_billing_product') }}

UNION ALL

SELECT 'erp', item_id, sku, name, not (is_inactive OR is_deleted), is_deleted, billing_product_id
FROM {{ ref('stg_erp_item') }}
