-- One row per subscription item; the recurring price normalized to a month.
WITH items AS (
    SELECT
        r.id AS subscription_id,
        coalesce(r.deleted, FALSE) AS is_deleted,
        unnest(
            -- the whole payload in one parse: extracting `$.items.data` first would parse it twice
            from_json(
                r.payload,
                '{"items": {"data": [{"id": "VARCHAR", "quantity": "VARCHAR",
                                      "current_period_start": "BIGINT",
                                      "current_period_end": "BIGINT",
                                      "price": {"id": "VARCHAR", "product": "VARCHAR",
                                                "currency": "VARCHAR", "unit_amount": "VARCHAR",
                                                "recurring": {"interval": "VARCHAR",
                                                              "interval_count": "BIGINT"}}}]}}'
            ).items.data
        ) AS item
    FROM {{ source('raw', 'billing_subscription') }} AS r
),

typed AS (
    SELECT
        item.id AS subscription_item_id,
        subscription_id,
        item.price.id AS price_id,
        item.price.product AS product_id,
        cast(item.quantity AS DOUBLE) AS quantity,
        billing_minor(item.price.unit_amount, ce.exponent - ce.billing_exponent) AS unit_amount_minor,
        item.price.recurring.interval AS interval,
        coalesce(item.price.recurring.interval_count, 1) AS interval_count,
        upper(item.price.currency) AS currency,
        unix_to_utc(item.current_period_start) AS current_period_start,
        unix_to_utc(item.current_period_end) AS current_period_end,
        is_deleted
    FROM items
    LEFT JOIN seeds.currency_exponents AS ce ON ce.currency = upper(item.price.currency)
)

SELECT
    t.*,
    p.sku,
    cast(
        t.unit_amount_minor * coalesce(t.quantity, 1)
        * CASE t.interval
            WHEN 'month' THEN 1.0
            WHEN 'year' THEN 1.0 / 12
            WHEN 'week' THEN 52.0 / 12
            WHEN 'day' THEN 365.0 / 12
        END
        / t.interval_count
        AS DECIMAL(24, 6)
    ) AS monthly_amount_minor
FROM typed AS t
LEFT JOIN {{ ref('stg_billing_product') }} AS p ON p.product_id = t.product_id
