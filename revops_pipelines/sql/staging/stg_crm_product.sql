-- CRM products as typed columns: SKU (product code), name, family, active and deleted flags.
select
    r.id as product_id,
    blank_null(r.payload->>'$.ProductCode') as sku,
    r.payload->>'$.Name' as name,
    r.payload->>'$.Family' as family,
    coalesce(sf_bool(r.payload->>'$.IsActive'), true) as is_active,
    coalesce(r.deleted, false) or coalesce(sf_bool(r.payload->>'$.IsDeleted'), false) as is_deleted,
    cast(r.payload->>'$.SystemModstamp' as timestamptz) as updated_at
from {{ source('raw', 'crm_product') }} as r
