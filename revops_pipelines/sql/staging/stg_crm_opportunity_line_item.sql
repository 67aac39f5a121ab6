-- Opportunity line items; money in the opportunity's currency (lines carry none of their own).
SELECT
    r.id AS line_item_id,
    blank_null(r.payload->>'$.OpportunityId') AS opportunity_id,
    blank_null(r.payload->>'$.Product2Id') AS product_id,
    blank_null(r.payload->>'$.ProductCode') AS sku,
    cast(r.payload->>'$.Quantity' AS DOUBLE) AS quantity,
    to_minor(r.payload->>'$.UnitPrice', coalesce(o.currency_exponent, 2)) AS unit_price_minor,
    to_minor(r.payload->>'$.TotalPrice', coalesce(o.currency_exponent, 2)) AS total_price_minor,
    o.currency,
    coalesce(r.deleted, FALSE) OR coalesce(sf_bool(r.payload->>'$.IsDeleted'), FALSE) AS is_deleted,
    cast(r.payload->>'$.SystemModstamp' AS TIMESTAMPTZ) AS updated_at
FROM {{ source('raw', 'crm_opportunity_line_item') }} AS r
LEFT JOIN {{ ref('stg_crm_opportunity') }} AS o
    ON o.opportunity_id = r.payload->>'$.OpportunityId'
