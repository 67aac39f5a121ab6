-- One row per payment and the invoice it applies to. ERP amounts are what was applied to that
-- invoice (previoustransactionlink), so a payment split over invoices gives several rows.
WITH erp_payments AS (
    SELECT * FROM {{ ref('stg_erp_transaction') }}
    WHERE transaction_type = 'CustPymt' AND NOT is_deleted
),

erp_invoices AS (
    SELECT transaction_id, externalid FROM {{ ref('stg_erp_transaction') }}
    WHERE transaction_type = 'CustInvc'
),

applications AS (
    SELECT * FROM {{ ref('stg_erp_previous_transaction_link') }}
    WHERE link_type = 'Payment' AND NOT is_deleted
)

SELECT
    'billing' AS source_system,
    p.invoice_payment_id AS source_id,
    p.invoice_payment_id AS billing_payment_id,
    p.invoice_id,
    p.invoice_id AS billing_invoice_id,
    i.customer_id,
    -- amount_paid is null until the payment is paid: nothing paid yet
    coalesce(p.amount_paid_minor, 0) AS amount_minor,
    p.currency,
    p.status,
    p.paid_at
FROM {{ ref('stg_billing_invoice_payment') }} AS p
LEFT JOIN {{ ref('stg_billing_invoice') }} AS i ON i.invoice_id = p.invoice_id
WHERE NOT p.is_deleted

UNION ALL

SELECT
    'erp',
    p.transaction_id,
    p.externalid,
    a.previous_transaction_id,
    inv.externalid,
    p.entity_id,
    -- an unapplied payment still exists: one row with its whole amount and no invoice
    coalesce(a.amount_minor, p.total_minor),
    p.currency,
    'paid',
    cast(p.trandate AS TIMESTAMPTZ)
FROM erp_payments AS p
LEFT JOIN applications AS a ON a.next_transaction_id = p.transaction_id
LEFT JOIN erp_invoices AS inv ON inv.transaction_id = a.previous_transaction_id
