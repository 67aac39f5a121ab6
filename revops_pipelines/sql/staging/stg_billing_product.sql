-- Billing products as typed columns: SKU from the metadata, name, active and deleted flags.
select
    r.id as product_id,
    blank_null(r.payload->>'$.metadata.sku') as sku,
    r.payload->>'$.name' as name,
    coalesce(cast(r.payload->>'$.active' as boolean), true) as is_active,
    unix_to_utc(r.payload->>'$.created') as created_at,
    unix_to_utc(r.payload->>'$.updated') as updated_at,
    coalesce(r.deleted, false) or coalesce(cast(r.payload->>'$.deleted' as boolean), false)
        as is_deleted
from {{ source('raw', 'billing_product') }} as r
