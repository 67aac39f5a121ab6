-- The products sold on each CRM opportunity: SKU, quantity, unit and line price in minor units.
SELECT
    'crm' AS source_system,
    line_item_id AS source_id,
    opportunity_id,
    product_id,
    sku,
    quantity,
    unit_price_minor,
    total_price_minor,
    currency,
    is_deleted
FROM {{ ref('stg_crm_opportunity_line_item') }}
