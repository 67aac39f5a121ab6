-- Won opportunities against billing subscriptions: missing after the grace period,
-- monthly amount different, status disagreeing with the CRM contract.
WITH opp AS (
    SELECT *
    FROM {{ ref('contract') }}
    WHERE is_won AND NOT coalesce(is_deleted, FALSE)
),

sub AS (
    SELECT *, upper(currency) AS currency_code, mrr_minor AS mrr
    FROM {{ ref('subscription') }}
),

opp_sub AS (
    SELECT o.source_id AS opp_id, s.source_id AS sub_id
    FROM opp AS o JOIN sub AS s ON s.crm_opportunity_id = o.source_id
    UNION
    SELECT o.source_id, s.source_id
    FROM opp AS o JOIN sub AS s ON o.billing_subscription_id = s.source_id
),

-- The customer finding covers its opportunities.
account_missing AS (
    SELECT crm_id FROM {{ ref('customer_drift') }} WHERE drift_type = 'customer_missing_in_billing'
),

tol AS (SELECT * FROM {{ ref('tolerance') }}),

pairs AS (
    SELECT
        o.source_id AS opp_id, o.account_id, o.contract_status, o.term_months,
        upper(o.currency) AS opp_currency, o.mrr_minor AS opp_mrr,
        s.source_id AS sub_id, s.status, s.currency_code, s.mrr AS sub_mrr
    FROM opp_sub AS x
    JOIN opp AS o ON o.source_id = x.opp_id
    JOIN sub AS s ON s.source_id = x.sub_id
),

found AS (
    SELECT
        'subscription_missing_for_won_opportunity' AS drift_type, 'subscription' AS entity,
        o.source_id AS crm_id, NULL AS billing_id, NULL AS erp_id, NULL AS field,
        -- Nothing is billed yet: the whole contract value is at stake.
        NULL AS expected, NULL AS actual, o.amount_minor AS amount_impact_minor,
        upper(o.currency) AS currency,
        'review' AS action,
        'Provision the billing subscription for won opportunity ' || o.source_id
            || ' (closed ' || CAST(o.close_date AS VARCHAR) || ')' AS suggested_action,
        o.source_id AS correlation_id
    FROM opp AS o
    WHERE o.source_id NOT IN (SELECT opp_id FROM opp_sub)
      AND o.account_id NOT IN (SELECT crm_id FROM account_missing)
      AND o.close_date IS NOT NULL
      AND timezone('UTC', CAST(o.close_date AS TIMESTAMP)) + to_days(CAST({{ var('grace_days') }} AS INTEGER))
          < CAST({{ var('now') }} AS TIMESTAMPTZ)

    UNION ALL
    SELECT
        'subscription_amount_mismatch', 'subscription',
        p.opp_id, p.sub_id, NULL, 'monthly_amount',
        CAST(round(p.opp_mrr) AS BIGINT)::VARCHAR, CAST(round(p.sub_mrr) AS BIGINT)::VARCHAR,
        CAST(abs(round(p.opp_mrr) - round(p.sub_mrr)) * coalesce(p.term_months, 1) AS BIGINT), p.currency_code,
        'review',
        'Opportunity ' || p.opp_id || ' is ' || CAST(round(p.opp_mrr) AS BIGINT)::VARCHAR
            || ' a month, subscription ' || p.sub_id || ' bills ' || CAST(round(p.sub_mrr) AS BIGINT)::VARCHAR
            || ': fix the subscription items or the opportunity',
        p.opp_id
    FROM pairs AS p
    LEFT JOIN tol ON tol.currency = p.currency_code
    WHERE p.status IN ('active', 'trialing', 'past_due')
      AND p.opp_mrr IS NOT NULL AND p.sub_mrr IS NOT NULL
      AND p.opp_currency = p.currency_code
      AND abs(round(p.opp_mrr) - round(p.sub_mrr)) > coalesce(tol.tolerance_minor, 0)

    UNION ALL
    SELECT
        'subscription_status_mismatch', 'subscription',
        p.opp_id, p.sub_id, NULL, 'status',
        p.status, p.contract_status, NULL, NULL,
        'auto',
        'Set CRM contract of opportunity ' || p.opp_id || ' to '
            || CASE WHEN p.status IN ('active', 'trialing', 'past_due') THEN 'Activated' ELSE 'Terminated' END
            || ' (billing subscription ' || p.sub_id || ' is ' || p.status || ')',
        p.opp_id
    FROM pairs AS p
    WHERE p.contract_status IS NOT NULL
      AND (
          (p.status IN ('active', 'trialing', 'past_due') AND lower(p.contract_status) <> 'activated')
          OR (p.status IN ('canceled', 'unpaid', 'incomplete_expired')
              AND lower(p.contract_status) NOT IN ('terminated', 'expired'))
      )
)

SELECT *, NULL::VARCHAR AS key_extra FROM found
