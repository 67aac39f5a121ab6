-- Monthly recurring revenue per linked customer: CRM (activated contracts of won opportunities,
-- Amount / term) against billing (all active subscriptions). Hierarchies are never rolled up.
WITH pair AS (
    SELECT left_id AS crm_id, right_id AS billing_id
    FROM {{ ref('customer_match') }}
    WHERE pair = 'crm_billing' AND method = 'link'
),

opp AS (
    SELECT *
    FROM {{ ref('contract') }}
    WHERE is_won AND NOT coalesce(is_deleted, FALSE)
),

sub AS (
    SELECT source_id, customer_id, crm_opportunity_id, status, upper(currency) AS currency,
           mrr_minor AS mrr
    FROM {{ ref('subscription') }}
),

crm_mrr AS (
    SELECT account_id, sum(mrr_minor) AS mrr, min(upper(currency)) AS currency
    FROM opp
    WHERE lower(contract_status) = 'activated'
    GROUP BY account_id
),

billing_mrr AS (
    SELECT customer_id, sum(mrr) AS mrr, min(currency) AS currency
    FROM sub
    WHERE status IN ('active', 'trialing', 'past_due')
    GROUP BY customer_id
),

-- A subscription finding or a won opportunity still without subscription explains the difference.
explained_account AS (
    SELECT o.account_id
    FROM opp AS o
    WHERE o.source_id IN (SELECT crm_id FROM {{ ref('subscription_drift') }})
       OR (o.source_id NOT IN (SELECT crm_opportunity_id FROM sub WHERE crm_opportunity_id IS NOT NULL)
           AND coalesce(o.billing_subscription_id, '') NOT IN (SELECT source_id FROM sub))
),

explained_customer AS (
    SELECT s.customer_id FROM sub AS s
    WHERE s.source_id IN (SELECT billing_id FROM {{ ref('subscription_drift') }} WHERE billing_id IS NOT NULL)
),

tol AS (SELECT * FROM {{ ref('tolerance') }}),

compared AS (
    SELECT
        p.crm_id, p.billing_id,
        round(coalesce(c.mrr, 0)) AS crm_value,
        round(coalesce(b.mrr, 0)) AS billing_value,
        coalesce(b.currency, c.currency) AS currency
    FROM pair AS p
    LEFT JOIN crm_mrr AS c ON c.account_id = p.crm_id
    LEFT JOIN billing_mrr AS b ON b.customer_id = p.billing_id
    WHERE p.crm_id NOT IN (SELECT account_id FROM explained_account)
      AND p.billing_id NOT IN (SELECT customer_id FROM explained_customer)
)

SELECT
    'mrr_mismatch' AS drift_type, 'customer' AS entity,
    x.crm_id, x.billing_id, NULL AS erp_id, 'mrr_minor' AS field,
    CAST(x.billing_value AS BIGINT)::VARCHAR AS expected, CAST(x.crm_value AS BIGINT)::VARCHAR AS actual,
    CAST(abs(x.billing_value - x.crm_value) AS BIGINT) AS amount_impact_minor, x.currency,
    'review' AS action,
    'Billing MRR ' || CAST(x.billing_value AS BIGINT)::VARCHAR || ' vs CRM '
        || CAST(x.crm_value AS BIGINT)::VARCHAR || ': find the contract or subscription that differs' AS suggested_action,
    x.billing_id AS correlation_id,
    NULL::VARCHAR AS key_extra
FROM compared AS x
LEFT JOIN tol ON tol.currency = x.currency
WHERE abs(x.billing_value - x.crm_value) > coalesce(tol.tolerance_minor, 0)
