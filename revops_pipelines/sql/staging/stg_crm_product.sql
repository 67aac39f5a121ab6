-- CRM products as typed columns: SKU (product code), name, family, active and deleted flags.
SELECT
    r.id AS product_id,
    blank_null(r.payload->>'$.ProductCode') AS sku,
    r.payload->>'$.Name' AS name,
    r.payload->>'$.Family' AS family,
    coalesce(sf_bool(r.payload->>'$.IsActive'), TRUE) AS is_active,
    coalesce(r.deleted, FALSE) OR coalesce(sf_bool(r.payload->>'$.IsDeleted'), FALSE) AS is_deleted,
    cast(r.payload->>'$.SystemModstamp' AS TIMESTAMPTZ) AS updated_at
FROM {{ source('raw', 'crm_product') }} AS r
