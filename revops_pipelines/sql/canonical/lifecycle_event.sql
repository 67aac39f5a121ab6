-- The quote-to-cash stages of each lifecycle with their time and system. The correlation id is
-- the CRM opportunity where the chain starts there, else the billing subscription or invoice.
WITH opportunities AS (
    SELECT * FROM {{ ref('contract') }} WHERE NOT is_deleted
),

opportunity_by_subscription AS (
    SELECT billing_subscription_id, min(source_id) AS opportunity_id
    FROM opportunities
    WHERE billing_subscription_id IS NOT NULL
    GROUP BY billing_subscription_id
),

subscriptions AS (
    SELECT
        s.source_id AS subscription_id,
        s.created_at,
        coalesce(o.source_id, ob.opportunity_id, s.source_id) AS correlation_id
    FROM {{ ref('subscription') }} AS s
    LEFT JOIN opportunities AS o ON o.source_id = s.crm_opportunity_id
    LEFT JOIN opportunity_by_subscription AS ob ON ob.billing_subscription_id = s.source_id
),

billing_invoice AS (
    SELECT
        i.source_id AS invoice_id,
        coalesce(i.finalized_at, i.created_at) AS occurred_at,
        coalesce(s.correlation_id, i.source_id) AS correlation_id
    FROM {{ ref('invoice') }} AS i
    LEFT JOIN subscriptions AS s ON s.subscription_id = i.subscription_id
    WHERE i.source_system = 'billing' AND i.status <> 'draft'
),

erp_invoices AS (
    SELECT
        i.source_id AS invoice_id,
        i.created_at AS occurred_at,
        coalesce(b.correlation_id, i.billing_invoice_id, i.source_id) AS correlation_id
    FROM {{ ref('invoice') }} AS i
    LEFT JOIN billing_invoice AS b ON b.invoice_id = i.billing_invoice_id
    WHERE i.source_system = 'erp'
)

SELECT source_id AS correlation_id, 'opportunity_won' AS stage, 'crm' AS system,
    source_id AS record_id, cast(close_date AS TIMESTAMPTZ) AS occurred_at
FROM opportunities
WHERE is_closed AND is_won

UNION ALL

SELECT correlation_id, 'subscription_provisioned', 'billing', subscription_id, created_at
FROM subscriptions

UNION ALL

SELECT correlation_id, 'invoice_generated', 'billing', invoice_id, occurred_at
FROM billing_invoice

UNION ALL

SELECT correlation_id, 'erp_posted', 'erp', invoice_id, occurred_at
FROM erp_invoices

UNION ALL

SELECT coalesce(b.correlation_id, p.invoice_id, p.source_id), 'payment_applied', 'billing',
    p.source_id, p.paid_at
FROM {{ ref('payment') }} AS p
LEFT JOIN billing_invoice AS b ON b.invoice_id = p.invoice_id
WHERE p.source_system = 'billing' AND p.status = 'paid'

UNION ALL

SELECT coalesce(e.correlation_id, p.source_id), 'payment_applied', 'erp', p.source_id, p.paid_at
FROM {{ ref('payment') }} AS p
LEFT JOIN erp_invoices AS e ON e.invoice_id = p.invoice_id
WHERE p.source_system = 'erp'
