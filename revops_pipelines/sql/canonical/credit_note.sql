-- Billing credit notes and ERP credit memos (the memo's invoice comes from its link).
WITH memo_invoice AS (
    SELECT next_transaction_id, min(previous_transaction_id) AS invoice_id
    FROM {{ ref('stg_erp_previous_transaction_link') }}
    WHERE link_type = 'CreditMemo'
    GROUP BY next_transaction_id
)

SELECT
    'billing' AS source_system,
    credit_note_id AS source_id,
    credit_note_id AS billing_credit_note_id,
    invoice_id,
    customer_id,
    total_minor,
    currency,
    status,
    created_at
FROM {{ ref('stg_billing_credit_note') }}
WHERE NOT is_deleted

UNION ALL

SELECT
    'erp',
    t.transaction_id,
    t.externalid,
    m.invoice_id,
    t.entity_id,
    t.total_minor,
    t.currency,
    coalesce(t.status, 'issued'),
    coalesce(t.created_at, cast(t.trandate AS TIMESTAMPTZ))
FROM {{ ref('stg_erp_transaction') }} AS t
LEFT JOIN memo_invoice AS m ON m.next_transaction_id = t.transaction_id
WHERE t.transaction_type = 'CustCred' AND NOT t.is_deleted
