-- What each billing subscription charges for: price, quantity, interval and the item's monthly
-- amount.
SELECT
    'billing' AS source_system,
    subscription_item_id AS source_id,
    subscription_id,
    price_id,
    product_id,
    sku,
    quantity,
    unit_amount_minor,
    interval,
    interval_count,
    monthly_amount_minor,
    currency,
    current_period_start,
    current_period_end
FROM {{ ref('stg_billing_subscription_item') }}
WHERE NOT is_deleted
