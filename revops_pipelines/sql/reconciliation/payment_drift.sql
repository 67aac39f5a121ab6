-- Billing invoice payments against ERP payments, compared by the amount applied to the invoice.
WITH bp AS (
    SELECT source_id, invoice_id, amount_minor, status, upper(currency) AS currency_code
    FROM {{ ref('payment') }}
    WHERE source_system = 'billing'
),

erp_invoice AS (
    SELECT source_id, nullif(trim(billing_invoice_id), '') AS billing_ref
    FROM {{ ref('invoice') }}
    WHERE source_system = 'erp'
),

ep AS (
    SELECT
        p.source_id,
        p.amount_minor,
        upper(p.currency) AS currency_code,
        nullif(trim(p.billing_payment_id), '') AS billing_ref,
        coalesce(i.billing_ref, nullif(trim(p.billing_invoice_id), '')) AS applied_billing_invoice
    FROM {{ ref('payment') }} AS p
    LEFT JOIN erp_invoice AS i ON i.source_id = p.invoice_id
    WHERE p.source_system = 'erp'
),

applied AS (
    SELECT
        bp.source_id AS billing_id,
        min(ep.source_id) AS erp_id,
        coalesce(sum(ep.amount_minor) FILTER (WHERE ep.applied_billing_invoice = bp.invoice_id), 0) AS amount
    FROM bp
    JOIN ep ON ep.billing_ref = bp.source_id
    GROUP BY bp.source_id
),

tol AS (SELECT * FROM {{ ref('tolerance') }})

-- A payment on an invoice the ERP does not hold is covered by the invoice's own finding.
SELECT
    'payment_missing_in_erp' AS drift_type, 'payment' AS entity,
    NULL AS crm_id, bp.source_id AS billing_id, NULL AS erp_id, NULL AS field,
    NULL AS expected, NULL AS actual, bp.amount_minor AS amount_impact_minor, bp.currency_code AS currency,
    'auto' AS action,
    'Upsert ERP payment with external id ' || bp.source_id || ' applied to the ERP invoice of '
        || bp.invoice_id AS suggested_action,
    bp.invoice_id AS invoice_ref
FROM bp
WHERE bp.status = 'paid' AND coalesce(bp.amount_minor, 0) > 0
  AND NOT EXISTS (SELECT 1 FROM ep WHERE ep.billing_ref = bp.source_id)
  AND EXISTS (SELECT 1 FROM erp_invoice AS i WHERE i.billing_ref = bp.invoice_id)

UNION ALL
SELECT
    'payment_amount_mismatch', 'payment', NULL, bp.source_id, a.erp_id, 'amount_minor',
    CAST(bp.amount_minor AS VARCHAR), CAST(a.amount AS VARCHAR),
    abs(coalesce(bp.amount_minor, 0) - a.amount), bp.currency_code,
    'review', 'ERP payment ' || a.erp_id || ' applies ' || CAST(a.amount AS VARCHAR) || ' to the invoice, billing '
        || CAST(bp.amount_minor AS VARCHAR) || ': adjust the application',
    bp.invoice_id
FROM bp
JOIN applied AS a ON a.billing_id = bp.source_id
LEFT JOIN tol ON tol.currency = bp.currency_code
WHERE abs(coalesce(bp.amount_minor, 0) - a.amount) > coalesce(tol.tolerance_minor, 0)

UNION ALL
SELECT
    'payment_orphan_in_erp', 'payment', NULL, NULL, ep.source_id, NULL,
    NULL, min(ep.billing_ref), sum(ep.amount_minor), min(ep.currency_code),
    'review', 'ERP payment ' || ep.source_id || ' names no billing payment: find its source',
    min(ep.applied_billing_invoice)
FROM ep
WHERE ep.billing_ref IS NULL OR NOT EXISTS (SELECT 1 FROM bp WHERE bp.source_id = ep.billing_ref)
GROUP BY ep.source_id
