-- Finalized billing invoices against ERP invoices: missing, orphan, duplicate, and for a
-- matched pair the first difference by the one-cause rule: currency, then total, then tax split.
WITH bil AS (
    SELECT *, upper(currency) AS currency_code
    FROM {{ ref('invoice') }}
    WHERE source_system = 'billing'
),

fin AS (SELECT * FROM bil WHERE finalized_at IS NOT NULL AND coalesce(status, '') <> 'draft'),

erp AS (
    SELECT
        *,
        upper(currency) AS currency_code,
        nullif(trim(billing_invoice_id), '') AS billing_ref,
        row_number() OVER (
            PARTITION BY nullif(trim(billing_invoice_id), '')
            ORDER BY TRY_CAST(source_id AS BIGINT) NULLS LAST, source_id
        ) AS copy_no
    FROM {{ ref('invoice') }}
    WHERE source_system = 'erp'
),

-- Customers reported as missing in the ERP (or not postable) cover their invoices.
covered_customer AS (
    SELECT billing_id FROM {{ ref('customer_drift') }}
    WHERE billing_id IS NOT NULL
      AND (drift_type = 'customer_missing_in_erp'
           OR (drift_type = 'customer_missing_tax_or_entity' AND erp_id IS NULL))
),

ctx AS (SELECT record_id, correlation_id FROM {{ ref('recon_invoice_context') }} WHERE kind = 'invoice'),
tol AS (SELECT * FROM {{ ref('recon_tolerance') }}),

pair AS (
    SELECT
        f.source_id AS billing_id, e.source_id AS erp_id, f.currency_code AS b_cur, e.currency_code AS e_cur,
        f.total_minor AS b_total, e.total_minor AS e_total, f.tax_minor AS b_tax, e.tax_minor AS e_tax,
        f.subtotal_minor AS b_sub, e.subtotal_minor AS e_sub, coalesce(t.tolerance_minor, 0) AS tol
    FROM fin AS f
    JOIN erp AS e ON e.billing_ref = f.source_id AND e.copy_no = 1
    LEFT JOIN tol AS t ON t.currency = f.currency_code
),

found AS (
    SELECT
        'invoice_missing_in_erp' AS drift_type, 'invoice' AS entity,
        NULL AS crm_id, f.source_id AS billing_id, NULL AS erp_id, NULL AS field,
        NULL AS expected, NULL AS actual, f.total_minor AS amount_impact_minor, f.currency_code AS currency,
        'auto' AS action,
        'Upsert ERP invoice with external id ' || f.source_id || ', then its payments' AS suggested_action
    FROM fin AS f
    WHERE NOT EXISTS (SELECT 1 FROM erp AS e WHERE e.billing_ref = f.source_id)
      AND f.customer_id NOT IN (SELECT billing_id FROM covered_customer)

    UNION ALL
    SELECT
        'invoice_orphan_in_erp', 'invoice', NULL, NULL, e.source_id, NULL,
        NULL, e.billing_ref, e.total_minor, e.currency_code,
        'review', 'ERP invoice ' || e.source_id || ' names no billing invoice: find its source or credit it'
    FROM erp AS e
    WHERE e.billing_ref IS NULL OR e.billing_ref NOT IN (SELECT source_id FROM bil)

    UNION ALL
    SELECT
        'invoice_duplicate_in_erp', 'invoice', NULL, e.billing_ref, e.source_id, NULL,
        NULL, NULL, e.total_minor, e.currency_code,
        'review', 'ERP invoice ' || e.source_id || ' repeats billing invoice ' || e.billing_ref
            || ': credit the later copy (never delete a posted invoice)'
    FROM erp AS e
    WHERE e.copy_no > 1 AND e.billing_ref IN (SELECT source_id FROM bil)

    UNION ALL
    SELECT
        'invoice_currency_mismatch', 'invoice', NULL, billing_id, erp_id, 'currency',
        b_cur, e_cur, b_total, b_cur,
        'review', 'ERP invoice ' || erp_id || ' is in ' || coalesce(e_cur, '?') || ', billing in ' || b_cur
            || ': credit it and post again in ' || b_cur
    FROM pair
    WHERE b_cur IS DISTINCT FROM e_cur

    UNION ALL
    SELECT
        'invoice_amount_mismatch', 'invoice', NULL, billing_id, erp_id, 'total_minor',
        CAST(b_total AS VARCHAR), CAST(e_total AS VARCHAR), abs(coalesce(b_total, 0) - coalesce(e_total, 0)), b_cur,
        'review', 'Do not edit posted ERP invoice ' || erp_id || ': issue a credit memo or adjustment of '
            || CAST(coalesce(b_total, 0) - coalesce(e_total, 0) AS VARCHAR) || ' minor units'
    FROM pair
    WHERE b_cur IS NOT DISTINCT FROM e_cur
      AND abs(coalesce(b_total, 0) - coalesce(e_total, 0)) > tol

    UNION ALL
    SELECT
        'invoice_tax_mismatch', 'invoice', NULL, billing_id, erp_id, 'tax_minor',
        CAST(b_tax AS VARCHAR), CAST(e_tax AS VARCHAR), abs(coalesce(b_tax, 0) - coalesce(e_tax, 0)), b_cur,
        'review', 'Tax on ERP invoice ' || erp_id || ' differs from billing; correct the tax lines'
    FROM pair
    WHERE b_cur IS NOT DISTINCT FROM e_cur
      AND abs(coalesce(b_total, 0) - coalesce(e_total, 0)) <= tol
      AND (abs(coalesce(b_tax, 0) - coalesce(e_tax, 0)) > tol
           OR (b_sub IS NOT NULL AND e_sub IS NOT NULL AND abs(b_sub - e_sub) > tol))
)

SELECT
    f.*,
    coalesce(c.correlation_id, f.billing_id, f.erp_id) AS correlation_id,
    NULL::VARCHAR AS key_extra
FROM found AS f
LEFT JOIN ctx AS c ON c.record_id = f.billing_id
