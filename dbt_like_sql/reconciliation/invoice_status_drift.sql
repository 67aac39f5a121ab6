-- Paid/open/void state of a finalized billing invoice against its ERP invoice. A payment finding
-- or an amount/currency finding on the same invoice already explains the state, so it is not repeated.
WITH bil AS (
    SELECT
        source_id,
        CASE status WHEN 'uncollectible' THEN 'open' ELSE status END AS state
    FROM {{ ref('invoice') }}
    WHERE source_system = 'billing' AND finalized_at IS NOT NULL AND coalesce(status, '') <> 'draft'
),

erp AS (
    SELECT
        source_id,
        nullif(trim(billing_invoice_id), '') AS billing_ref,
        -- A zero-total invoice is settled without any payment.
        CASE
            WHEN status = 'open' AND coalesce(total_minor, 0) = 0 AND coalesce(amount_remaining_minor, 0) = 0 THEN 'paid'
            ELSE status
        END AS state,
        row_number() OVER (
            PARTITION BY nullif(trim(billing_invoice_id), '')
            ORDER BY TRY_CAST(source_id AS BIGINT) NULLS LAST, source_id
        ) AS copy_no
    FROM {{ ref('invoice') }}
    WHERE source_system = 'erp'
),

explained AS (
    SELECT billing_id FROM {{ ref('invoice_drift') }}
    WHERE drift_type IN ('invoice_amount_mismatch', 'invoice_currency_mismatch')
    UNION
    SELECT p.invoice_id
    FROM {{ ref('payment_drift') }} AS d
    JOIN {{ ref('payment') }} AS p ON p.source_system = 'billing' AND p.source_id = d.billing_id
    WHERE d.drift_type IN ('payment_missing_in_erp', 'payment_amount_mismatch')
),

ctx AS (SELECT record_id, correlation_id FROM {{ ref('recon_invoice_context') }} WHERE kind = 'invoice'),

-- How far along each state is: the ERP is behind when billing is further.
rank AS (SELECT * FROM (VALUES ('open', 0), ('paid', 1), ('void', 1)) AS r(state, step))

SELECT
    'invoice_status_mismatch' AS drift_type, 'invoice' AS entity,
    NULL AS crm_id, b.source_id AS billing_id, e.source_id AS erp_id, 'status' AS field,
    b.state AS expected, e.state AS actual, NULL::BIGINT AS amount_impact_minor, NULL AS currency,
    CASE WHEN rb.step > coalesce(re.step, 0) THEN 'auto' ELSE 'review' END AS action,
    CASE
        WHEN rb.step > coalesce(re.step, 0) THEN 'Set ERP invoice ' || e.source_id || ' to ' || b.state
        ELSE 'ERP invoice ' || e.source_id || ' is ' || coalesce(e.state, '?') || ' but billing says ' || b.state || ': review'
    END AS suggested_action,
    coalesce(c.correlation_id, b.source_id) AS correlation_id,
    NULL::VARCHAR AS key_extra
FROM bil AS b
JOIN erp AS e ON e.billing_ref = b.source_id AND e.copy_no = 1
LEFT JOIN rank AS rb ON rb.state = b.state
LEFT JOIN rank AS re ON re.state = e.state
LEFT JOIN ctx AS c ON c.record_id = b.source_id
WHERE b.state IS DISTINCT FROM e.state
  AND b.source_id NOT IN (SELECT billing_id FROM explained WHERE billing_id IS NOT NULL)
