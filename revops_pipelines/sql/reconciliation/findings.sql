-- Every finding of this run, one row each, with a stable id, its code's severity from the
-- drift-code catalog (seeds/drift_codes.csv), and the lifecycle it belongs to.
-- The id hashes the code, entity, ids and field (and, for a SKU, the system it is missing in).
-- A finding that names a quarantined record, or the record it is reconciled against, is held
-- back: that comparison was not made, and the quarantine says why.
WITH quarantined AS (
    SELECT DISTINCT source_system, source_id, linked_billing_id
    FROM {{ source('canonical', 'quarantine') }}
    WHERE source_id IS NOT NULL
),

held AS (
    SELECT source_id AS record_id FROM quarantined
    UNION
    SELECT linked_billing_id FROM quarantined WHERE linked_billing_id IS NOT NULL
    UNION
    SELECT i.source_id FROM {{ ref('invoice') }} AS i
    SEMI JOIN quarantined AS q ON q.source_system = 'billing' AND q.source_id = i.billing_invoice_id
    WHERE i.source_system = 'erp'
    UNION
    SELECT p.source_id FROM {{ ref('payment') }} AS p
    SEMI JOIN quarantined AS q ON q.source_system = 'billing' AND q.source_id = p.billing_payment_id
    WHERE p.source_system = 'erp'
    UNION
    SELECT c.source_id FROM {{ ref('customer') }} AS c
    SEMI JOIN quarantined AS q ON q.source_system = 'billing' AND q.source_id = c.billing_customer_id
    WHERE c.source_system = 'erp'
),

all_found AS (
    SELECT * FROM {{ ref('customer_drift') }}
    UNION ALL BY NAME SELECT * FROM {{ ref('product_drift') }}
    UNION ALL BY NAME SELECT * FROM {{ ref('subscription_drift') }}
    UNION ALL BY NAME SELECT * FROM {{ ref('invoice_drift') }}
    UNION ALL BY NAME SELECT * FROM {{ ref('payment_drift') }}
    UNION ALL BY NAME SELECT * FROM {{ ref('mrr_drift') }}
),

found AS (
    SELECT f.* FROM all_found AS f
    WHERE NOT EXISTS (
        SELECT 1 FROM held AS h
        WHERE h.record_id IN (f.crm_id, f.billing_id, f.erp_id, f.invoice_ref)
    )
),

-- Where each finding's lifecycle starts: the CRM opportunity of its subscription when linked
-- (either side), else the subscription, else the invoice; looked up for the findings only.
invoice_of AS (
    SELECT DISTINCT coalesce(invoice_ref, CASE WHEN entity = 'invoice' THEN billing_id END) AS invoice_id
    FROM found
),

inv AS (
    SELECT i.source_id AS invoice_id, i.subscription_id
    FROM {{ ref('invoice') }} AS i
    JOIN invoice_of AS r ON r.invoice_id = i.source_id
    WHERE i.source_system = 'billing'
),

live_opp AS (
    SELECT source_id, billing_subscription_id FROM {{ ref('contract') }} WHERE NOT coalesce(is_deleted, FALSE)
),

sub AS (
    SELECT
        s.source_id AS subscription_id,
        coalesce(
            (SELECT min(o.source_id) FROM live_opp AS o WHERE o.source_id = s.crm_opportunity_id),
            (SELECT min(o.source_id) FROM live_opp AS o WHERE o.billing_subscription_id = s.source_id),
            s.source_id
        ) AS correlation_id
    FROM {{ ref('subscription') }} AS s
    WHERE s.source_id IN (SELECT subscription_id FROM inv WHERE subscription_id IS NOT NULL)
),

invoice_correlation AS (
    SELECT inv.invoice_id, coalesce(sub.correlation_id, inv.invoice_id) AS correlation_id
    FROM inv LEFT JOIN sub ON sub.subscription_id = inv.subscription_id
)

SELECT DISTINCT ON (exception_id) *
FROM (
    SELECT
        md5(concat_ws('|', f.drift_type, f.entity, coalesce(f.crm_id, ''), coalesce(f.billing_id, ''),
            coalesce(f.erp_id, ''), coalesce(f.field, ''), coalesce(f.key_extra, ''))) AS exception_id,
        f.drift_type,
        f.entity,
        f.crm_id,
        f.billing_id,
        f.erp_id,
        f.field,
        f.expected,
        f.actual,
        CAST(f.amount_impact_minor AS BIGINT) AS amount_impact_minor,
        upper(f.currency) AS currency,
        c.severity,
        coalesce(f.correlation_id, ic.correlation_id, f.billing_id, f.crm_id, f.erp_id) AS correlation_id,
        coalesce(f.action, c.action) AS action,
        f.suggested_action
    FROM found AS f
    -- The catalog of drift codes gives each code its severity.
    LEFT JOIN seeds.drift_codes AS c ON c.drift_type = f.drift_type
    LEFT JOIN invoice_correlation AS ic
        ON ic.invoice_id = coalesce(f.invoice_ref, CASE WHEN f.entity = 'invoice' THEN f.billing_id END)
)
ORDER BY exception_id
