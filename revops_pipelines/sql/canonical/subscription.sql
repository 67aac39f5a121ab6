-- Billing subscriptions; MRR is the sum of the items' monthly-normalized price × quantity.
WITH item_mrr AS (
    SELECT subscription_id, sum(monthly_amount_minor) AS mrr_minor
    FROM {{ ref('stg_billing_subscription_item') }}
    GROUP BY subscription_id
)

SELECT
    'billing' AS source_system,
    s.subscription_id AS source_id,
    s.customer_id,
    s.crm_opportunity_id,
    s.status,
    s.currency,
    s.created_at,
    s.start_date,
    s.canceled_at,
    s.ended_at,
    s.cancel_at_period_end,
    cast(coalesce(m.mrr_minor, 0) AS DECIMAL(24, 6)) AS mrr_minor
FROM {{ ref('stg_billing_subscription') }} AS s
LEFT JOIN item_mrr AS m ON m.subscription_id = s.subscription_id
WHERE NOT s.is_deleted
