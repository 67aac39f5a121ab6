-- Every finding of this run, one row each, with a stable id, severity and correlation.
-- The id hashes the code, entity, ids and field (and, for a SKU, the system it is missing in).
WITH found AS (
    SELECT * FROM {{ ref('customer_drift') }}
    UNION ALL BY NAME SELECT * FROM {{ ref('product_drift') }}
    UNION ALL BY NAME SELECT * FROM {{ ref('subscription_drift') }}
    UNION ALL BY NAME SELECT * FROM {{ ref('invoice_drift') }}
    UNION ALL BY NAME SELECT * FROM {{ ref('invoice_status_drift') }}
    UNION ALL BY NAME SELECT * FROM {{ ref('payment_drift') }}
    UNION ALL BY NAME SELECT * FROM {{ ref('mrr_drift') }}
),

severity AS (
    SELECT * FROM (VALUES
        ('invoice_duplicate_in_erp', 'critical'),
        ('invoice_currency_mismatch', 'critical'),
        ('invoice_amount_mismatch', 'critical'),
        ('payment_amount_mismatch', 'critical'),
        ('customer_missing_in_erp', 'high'),
        ('customer_missing_in_billing', 'high'),
        ('customer_missing_tax_or_entity', 'high'),
        ('invoice_missing_in_erp', 'high'),
        ('invoice_orphan_in_erp', 'high'),
        ('payment_missing_in_erp', 'high'),
        ('payment_orphan_in_erp', 'high'),
        ('subscription_missing_for_won_opportunity', 'high'),
        ('invoice_tax_mismatch', 'high'),
        ('subscription_amount_mismatch', 'medium'),
        ('subscription_status_mismatch', 'medium'),
        ('invoice_status_mismatch', 'medium'),
        ('mrr_mismatch', 'medium'),
        ('customer_duplicate', 'medium'),
        ('product_unmapped', 'medium'),
        ('customer_attribute_mismatch', 'low'),
        ('unlinked_match', 'low')
    ) AS s(drift_type, severity)
)

SELECT DISTINCT ON (exception_id) *
FROM (
    SELECT
        md5(concat_ws('|', f.drift_type, f.entity, coalesce(f.crm_id, ''), coalesce(f.billing_id, ''),
            coalesce(f.erp_id, ''), coalesce(f.field, ''), coalesce(f.key_extra, ''))) AS exception_id,
        f.drift_type,
        f.entity,
        f.crm_id,
        f.billing_id,
        f.erp_id,
        f.field,
        f.expected,
        f.actual,
        CAST(f.amount_impact_minor AS BIGINT) AS amount_impact_minor,
        upper(f.currency) AS currency,
        coalesce(s.severity, 'medium') AS severity,
        coalesce(f.correlation_id, f.billing_id, f.crm_id, f.erp_id) AS correlation_id,
        f.action,
        f.suggested_action
    FROM found AS f
    LEFT JOIN severity AS s ON s.drift_type = f.drift_type
)
ORDER BY exception_id
