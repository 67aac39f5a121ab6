-- One row per CRM opportunity with its contract (the latest live one when there are several).
WITH contracts AS (
    SELECT *
    FROM {{ ref('stg_crm_contract') }}
    WHERE opportunity_id IS NOT NULL
    QUALIFY row_number() OVER (
        PARTITION BY opportunity_id
        ORDER BY is_deleted, updated_at DESC NULLS LAST, contract_id DESC
    ) = 1
)

SELECT
    'crm' AS source_system,
    o.opportunity_id AS source_id,
    o.account_id,
    o.name AS opportunity_name,
    o.stage,
    o.is_closed,
    o.is_won,
    o.close_date,
    o.amount_minor,
    o.currency,
    o.term_months,
    cast(o.amount_minor / nullif(o.term_months, 0) AS DECIMAL(24, 6)) AS mrr_minor,
    o.billing_subscription_id,
    c.contract_id,
    c.status AS contract_status,
    c.start_date,
    c.end_date,
    o.is_deleted
FROM {{ ref('stg_crm_opportunity') }} AS o
LEFT JOIN contracts AS c ON c.opportunity_id = o.opportunity_id
