-- The three catalogs side by side; the SKU is what links them.
select
    'crm' as source_system,
    product_id as source_id,
    sku,
    name,
    is_active and not is_deleted as is_active,
    is_deleted,
    cast(null as varchar) as billing_product_id
from {{ ref('stg_crm_product') }}

union all

select 'billing', product_id, sku, name, is_active and not is_deleted, is_deleted, product_id
from {{ ref('stg_billing_product') }}

union all

select 'erp', item_id, sku, name, not (is_inactive or is_deleted), is_deleted, billing_product_id
from {{ ref('stg_erp_item') }}
