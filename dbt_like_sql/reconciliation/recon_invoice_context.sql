-- Where each billing subscription and invoice starts its lifecycle: the CRM opportunity
-- when one is linked (either side), else the subscription, else the invoice itself.
WITH opp AS (
    SELECT source_id, billing_subscription_id
    FROM {{ ref('contract') }}
    WHERE NOT coalesce(is_deleted, false)
),

sub AS (
    SELECT
        s.source_id AS subscription_id,
        s.customer_id,
        coalesce(
            (SELECT min(o.source_id) FROM opp AS o WHERE o.source_id = s.crm_opportunity_id),
            (SELECT min(o.source_id) FROM opp AS o WHERE o.billing_subscription_id = s.source_id)
        ) AS opportunity_id
    FROM {{ ref('subscription') }} AS s
)

SELECT
    'subscription' AS kind,
    subscription_id AS record_id,
    customer_id,
    subscription_id,
    opportunity_id,
    coalesce(opportunity_id, subscription_id) AS correlation_id
FROM sub
UNION ALL
SELECT
    'invoice',
    i.source_id,
    i.customer_id,
    i.subscription_id,
    s.opportunity_id,
    coalesce(s.opportunity_id, i.subscription_id, i.source_id)
FROM {{ ref('invoice') }} AS i
LEFT JOIN sub AS s ON s.subscription_id = i.subscription_id
WHERE i.source_system = 'billing'
