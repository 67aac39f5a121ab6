-- Each billing invoice's lines: product, SKU, quantity, amount in minor units and service period.
SELECT
    'billing' AS source_system,
    l.invoice_line_id AS source_id,
    l.invoice_id,
    l.line_number,
    l.product_id,
    l.sku,
    l.description,
    l.quantity,
    l.amount_minor,
    l.currency,
    l.period_start,
    l.period_end
FROM {{ ref('stg_billing_invoice_line') }} AS l
WHERE NOT l.is_deleted

UNION ALL

SELECT
    'erp',
    l.transaction_line_id,
    l.transaction_id,
    l.line_number,
    l.item_id,
    l.sku,
    l.memo,
    l.quantity,
    l.amount_minor,
    l.currency,
    cast(NULL AS TIMESTAMPTZ),
    cast(NULL AS TIMESTAMPTZ)
FROM {{ ref('stg_erp_transaction_line') }} AS l
INNER JOIN {{ ref('stg_erp_transaction') }} AS t ON t.transaction_id = l.transaction_id
WHERE t.transaction_type = 'CustInvc' AND NOT t.is_deleted AND NOT l.is_deleted
