-- ERP items as typed columns: SKU, name, the billing product it stands for, inactive flag.
SELECT
    r.id AS item_id,
    blank_null(r.payload->>'$.itemid') AS sku,
    r.payload->>'$.displayname' AS name,
    blank_null(r.payload->>'$.externalid') AS billing_product_id,
    coalesce(ns_bool(r.payload->>'$.isinactive'), FALSE) AS is_inactive,
    cast(r.payload->>'$.lastmodifieddate' AS TIMESTAMPTZ) AS updated_at,
    coalesce(r.deleted, FALSE) AS is_deleted
FROM {{ source('raw', 'erp_item') }} AS r
