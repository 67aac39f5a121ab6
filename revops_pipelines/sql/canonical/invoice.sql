-- Billing and ERP invoices in one shape; ERP statuses mapped to billing's vocabulary.
SELECT
    'billing' AS source_system,
    invoice_id AS source_id,
    invoice_id AS billing_invoice_id,
    customer_id,
    customer_id AS billing_customer_id,
    subscription_id,
    number,
    status,
    status AS status_raw,
    currency,
    subtotal_minor,
    tax_minor,
    total_minor,
    amount_remaining_minor,
    cast(created_at AS DATE) AS invoice_date,
    period_start,
    period_end,
    finalized_at,
    paid_at,
    is_finalized,
    created_at,
    greatest(created_at, finalized_at, paid_at, voided_at) AS updated_at
FROM {{ ref('stg_billing_invoice') }}
WHERE NOT is_deleted

UNION ALL

SELECT
    'erp',
    t.transaction_id,
    t.externalid,
    t.entity_id,
    c.billing_customer_id,
    t.billing_subscription_id,
    t.tranid,
    CASE t.status
        WHEN 'paidInFull' THEN 'paid'
        WHEN 'open' THEN 'open'
        WHEN 'voided' THEN 'void'
    END,
    t.status,
    t.currency,
    t.total_minor - coalesce(t.tax_minor, 0),
    coalesce(t.tax_minor, 0),
    t.total_minor,
    t.amount_remaining_minor,
    t.trandate,
    cast(NULL AS TIMESTAMPTZ),
    cast(NULL AS TIMESTAMPTZ),
    t.created_at,
    cast(NULL AS TIMESTAMPTZ),
    TRUE,
    t.created_at,
    t.updated_at
FROM {{ ref('stg_erp_transaction') }} AS t
LEFT JOIN {{ ref('stg_erp_customer') }} AS c ON c.customer_id = t.entity_id
WHERE t.transaction_type = 'CustInvc' AND NOT t.is_deleted
