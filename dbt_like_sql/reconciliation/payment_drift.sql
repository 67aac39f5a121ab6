-- Billing invoice payments against ERP payments, compared by the amount applied to the invoice.
WITH bp AS (
    SELECT *, upper(currency) AS currency_code
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
        p.*,
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

ctx AS (SELECT record_id, correlation_id FROM {{ ref('recon_invoice_context') }} WHERE kind = 'invoice'),
tol AS (SELECT * FROM {{ ref('recon_tolerance') }}),

found AS (
    -- A payment on an invoice the ERP does not hold is covered by the invoice's own finding.
    SELECT
        'payment_missing_in_erp' AS drift_type, 'payment' AS entity,
        NULL AS crm_id, bp.source_id AS billing_id, NULL AS erp_id, NULL AS field,
        NULL AS expected, NULL AS actual, bp.amount_minor AS amount_impact_minor, bp.currency_code AS currency,
        'auto' AS action,
        'Upsert ERP payment with external id ' || bp.source_id || ' applied to the ERP invoice of '
            || bp.invoice_id AS suggested_action,
        bp.invoice_id AS billing_invoice_id
    FROM bp
    WHERE bp.status = 'paid' AND coalesce(bp.amount_minor, 0) > 0
      AND bp.source_id NOT IN (SELECT billing_ref FROM ep WHERE billing_ref IS NOT NULL)
      AND bp.invoice_id IN (SELECT billing_ref FROM erp_invoice WHERE billing_ref IS NOT NULL)

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
    WHERE ep.billing_ref IS NULL OR ep.billing_ref NOT IN (SELECT source_id FROM bp)
    GROUP BY ep.source_id
)

SELECT
    f.* EXCLUDE (billing_invoice_id),
    coalesce(c.correlation_id, f.billing_invoice_id, f.billing_id, f.erp_id) AS correlation_id,
    NULL::VARCHAR AS key_extra
FROM found AS f
LEFT JOIN ctx AS c ON c.record_id = f.billing_invoice_id
