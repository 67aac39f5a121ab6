-- Billing products as typed columns: SKU from the metadata, name, active and deleted flags.
SELECT
    r.id AS product_id,
    blank_null(r.payload->>'$.metadata.sku') AS sku,
    r.payload->>'$.name' AS name,
    coalesce(cast(r.payload->>'$.active' AS BOOLEAN), TRUE) AS is_active,
    unix_to_utc(r.payload->>'$.created') AS created_at,
    unix_to_utc(r.payload->>'$.updated') AS updated_at,
    coalesce(r.deleted, FALSE) OR coalesce(cast(r.payload->>'$.deleted' AS BOOLEAN), FALSE)
        AS is_deleted
FROM {{ source('raw', 'billing_product') }} AS r
