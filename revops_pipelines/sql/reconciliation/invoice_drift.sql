-- Finalized billing invoices against ERP invoices: missing, orphan, duplicate; for a matched pair
-- the first difference by the one-cause rule (currency, then total, then tax split), and the
-- paid/open/void state unless a payment or amount finding on the invoice already explains it.
WITH bil AS (
    SELECT source_id, customer_id, upper(currency) AS currency_code, total_minor, tax_minor,
           subtotal_minor, finalized_at IS NOT NULL AND coalesce(status, '') <> 'draft' AS is_final,
           CASE status WHEN 'uncollectible' THEN 'open' ELSE status END AS state
    FROM {{ ref('invoice') }}
    WHERE source_system = 'billing'
),

erp AS (
    SELECT
        source_id, upper(currency) AS currency_code, total_minor, tax_minor, subtotal_minor,
        -- Canonical already trims the external id and makes a blank one NULL (blank_null).
        billing_invoice_id AS billing_ref,
        -- A zero-total invoice is settled without any payment.
        CASE
            WHEN status = 'open' AND coalesce(total_minor, 0) = 0 AND coalesce(amount_remaining_minor, 0) = 0 THEN 'paid'
            ELSE status
        END AS state
    FROM {{ ref('invoice') }}
    WHERE source_system = 'erp'
),

-- Billing invoices the ERP holds more than once.
repeated AS (
    SELECT billing_invoice_id AS billing_ref
    FROM {{ ref('invoice') }}
    WHERE source_system = 'erp' AND billing_invoice_id IS NOT NULL
    GROUP BY ALL
    HAVING count(*) > 1
),

tol AS (SELECT * FROM {{ ref('tolerance') }}),

-- Both sides in one join, keeping only rows that can give a finding: billing only, ERP only,
-- copies of a repeated invoice, and pairs that differ in money or state.
joined AS (
    SELECT *
    FROM (
        SELECT
            b.source_id AS billing_id, e.source_id AS erp_id, e.billing_ref, b.customer_id, b.is_final,
            b.currency_code AS b_cur, e.currency_code AS e_cur, b.total_minor AS b_total,
            e.total_minor AS e_total, b.tax_minor AS b_tax, e.tax_minor AS e_tax,
            b.subtotal_minor AS b_sub, e.subtotal_minor AS e_sub, b.state AS b_state, e.state AS e_state,
            CASE
                WHEN (b.currency_code IS DISTINCT FROM e.currency_code) THEN 'invoice_currency_mismatch'
                WHEN abs(coalesce(b.total_minor, 0) - coalesce(e.total_minor, 0)) > coalesce(t.tolerance_minor, 0)
                THEN 'invoice_amount_mismatch'
                WHEN abs(coalesce(b.tax_minor, 0) - coalesce(e.tax_minor, 0)) > coalesce(t.tolerance_minor, 0)
                  OR (b.subtotal_minor IS NOT NULL AND e.subtotal_minor IS NOT NULL
                      AND abs(b.subtotal_minor - e.subtotal_minor) > coalesce(t.tolerance_minor, 0))
                THEN 'invoice_tax_mismatch'
            END AS money_code
        FROM bil AS b
        FULL OUTER JOIN erp AS e ON e.billing_ref = b.source_id
        LEFT JOIN tol AS t ON t.currency = b.currency_code
    )
    WHERE billing_id IS NULL OR erp_id IS NULL OR money_code IS NOT NULL
       OR b_state IS DISTINCT FROM e_state OR billing_ref IN (SELECT billing_ref FROM repeated)
),

-- The first copy is the lowest internal id; the others are duplicates.
copies AS (
    SELECT
        *,
        billing_ref IS NOT NULL AND row_number() OVER (
            PARTITION BY billing_ref ORDER BY TRY_CAST(erp_id AS BIGINT) NULLS LAST, erp_id
        ) > 1 AS is_later_copy
    FROM joined
),

-- Customers reported as missing in the ERP (or not postable) cover their invoices.
covered_customer AS (
    SELECT DISTINCT billing_id FROM {{ ref('customer_drift') }}
    WHERE billing_id IS NOT NULL
      AND (drift_type = 'customer_missing_in_erp'
           OR (drift_type = 'customer_missing_tax_or_entity' AND erp_id IS NULL))
),

paid_explained AS (
    SELECT DISTINCT invoice_ref FROM {{ ref('payment_drift') }}
    WHERE drift_type IN ('payment_missing_in_erp', 'payment_amount_mismatch') AND invoice_ref IS NOT NULL
),

compared AS (
    SELECT * FROM copies WHERE is_final AND erp_id IS NOT NULL AND NOT is_later_copy
)

SELECT
    'invoice_missing_in_erp' AS drift_type, 'invoice' AS entity,
    NULL AS crm_id, f.billing_id, NULL AS erp_id, NULL AS field,
    NULL AS expected, NULL AS actual, f.b_total AS amount_impact_minor, f.b_cur AS currency,
    'auto' AS action,
    'Upsert ERP invoice with external id ' || f.billing_id || ', then its payments' AS suggested_action
FROM copies AS f
WHERE f.erp_id IS NULL AND f.is_final
  AND NOT EXISTS (SELECT 1 FROM covered_customer AS c WHERE c.billing_id = f.customer_id)

UNION ALL
SELECT
    'invoice_orphan_in_erp', 'invoice', NULL, NULL, e.erp_id, NULL,
    NULL, e.billing_ref, e.e_total, e.e_cur,
    'review', 'ERP invoice ' || e.erp_id || ' names no billing invoice: find its source or credit it'
FROM copies AS e
WHERE e.billing_id IS NULL

UNION ALL
SELECT
    'invoice_duplicate_in_erp', 'invoice', NULL, e.billing_ref, e.erp_id, NULL,
    NULL, NULL, e.e_total, e.e_cur,
    'review', 'ERP invoice ' || e.erp_id || ' repeats billing invoice ' || e.billing_ref
        || ': credit the later copy (never delete a posted invoice)'
FROM copies AS e
WHERE e.is_later_copy AND e.billing_id IS NOT NULL

UNION ALL
SELECT
    money_code, 'invoice', NULL, billing_id, erp_id,
    CASE money_code WHEN 'invoice_currency_mismatch' THEN 'currency'
                    WHEN 'invoice_amount_mismatch' THEN 'total_minor' ELSE 'tax_minor' END,
    CASE money_code WHEN 'invoice_currency_mismatch' THEN b_cur
                    WHEN 'invoice_amount_mismatch' THEN CAST(b_total AS VARCHAR) ELSE CAST(b_tax AS VARCHAR) END,
    CASE money_code WHEN 'invoice_currency_mismatch' THEN e_cur
                    WHEN 'invoice_amount_mismatch' THEN CAST(e_total AS VARCHAR) ELSE CAST(e_tax AS VARCHAR) END,
    CASE money_code WHEN 'invoice_currency_mismatch' THEN b_total
                    WHEN 'invoice_amount_mismatch' THEN abs(coalesce(b_total, 0) - coalesce(e_total, 0))
                    ELSE abs(coalesce(b_tax, 0) - coalesce(e_tax, 0)) END,
    b_cur,
    'review',
    CASE money_code
        WHEN 'invoice_currency_mismatch' THEN 'ERP invoice ' || erp_id || ' is in ' || coalesce(e_cur, '?')
            || ', billing in ' || b_cur || ': credit it and post again in ' || b_cur
        WHEN 'invoice_amount_mismatch' THEN 'Do not edit posted ERP invoice ' || erp_id
            || ': issue a credit memo or adjustment of '
            || CAST(coalesce(b_total, 0) - coalesce(e_total, 0) AS VARCHAR) || ' minor units'
        ELSE 'Tax on ERP invoice ' || erp_id || ' differs from billing; correct the tax lines'
    END
FROM compared
WHERE money_code IS NOT NULL

UNION ALL
SELECT
    'invoice_status_mismatch', 'invoice', NULL, billing_id, erp_id, 'status',
    b_state, e_state, NULL, NULL,
    -- The ERP is behind when billing has moved on (paid or void) and the ERP is still open.
    CASE WHEN b_state IN ('paid', 'void') AND e_state = 'open' THEN 'auto' ELSE 'review' END,
    CASE
        WHEN b_state IN ('paid', 'void') AND e_state = 'open' THEN 'Set ERP invoice ' || erp_id || ' to ' || b_state
        ELSE 'ERP invoice ' || erp_id || ' is ' || coalesce(e_state, '?') || ' but billing says ' || b_state || ': review'
    END
FROM compared AS c
WHERE b_state IS DISTINCT FROM e_state
  AND money_code IS NULL
  AND NOT EXISTS (SELECT 1 FROM paid_explained AS p WHERE p.invoice_ref = c.billing_id)
