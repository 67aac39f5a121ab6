-- ERP items as typed columns: SKU, name, the billing product it stands for, inactive flag.
select
    r.id as item_id,
    blank_null(r.payload->>'$.itemid') as sku,
    r.payload->>'$.displayname' as name,
    blank_null(r.payload->>'$.externalid') as billing_product_id,
    coalesce(ns_bool(r.payload->>'$.isinactive'), false) as is_inactive,
    cast(r.payload->>'$.lastmodifieddate' as timestamptz) as updated_at,
    coalesce(r.deleted, false) as is_deleted
from {{ source('raw', 'erp_item') }} as r
