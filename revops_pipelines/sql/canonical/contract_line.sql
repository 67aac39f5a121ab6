-- The products sold on each CRM opportunity: SKU, quantity, unit and line price in minor units.
select
    'crm' as source_system,
    line_item_id as source_id,
    opportunity_id,
    product_id,
    sku,
    quantity,
    unit_price_minor,
    total_price_minor,
    currency,
    is_deleted
from {{ ref('stg_crm_opportunity_line_item') }}
