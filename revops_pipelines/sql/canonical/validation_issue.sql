-- Pre-orchestration checks of master data, one row per problem found: account hierarchy,
-- legal entity and its ERP subsidiary, tax jurisdiction, SKU alignment across the three
-- catalogs, contract metadata on won deals; and every canonical record quarantined because it
-- broke its pandera model, so a person sees what could not be reconciled and why.
WITH RECURSIVE accounts AS (
    SELECT * FROM {{ ref('customer') }} WHERE source_system = 'crm' AND NOT is_deleted
),

-- The ERP's subsidiaries decide which entities can post.
entity_codes AS (
    SELECT DISTINCT legal_entity FROM {{ ref('legal_entity_subsidiary') }}
),

-- Walk up each account's parents; bounded so a cycle ends.
ancestry(start_id, current_id, depth) AS (
    SELECT source_id, parent_id, 1 FROM accounts WHERE parent_id IS NOT NULL
    UNION ALL
    SELECT w.start_id, a.parent_id, w.depth + 1
    FROM ancestry AS w
    INNER JOIN accounts AS a ON a.source_id = w.current_id
    WHERE a.parent_id IS NOT NULL AND w.current_id <> w.start_id AND w.depth < 64
),

won_opportunities AS (
    SELECT * FROM {{ ref('contract') }} WHERE is_closed AND is_won AND NOT is_deleted
),

used_skus AS (
    SELECT l.sku, 'an opportunity' AS used_on
    FROM {{ ref('contract_line') }} AS l
    INNER JOIN {{ ref('contract') }} AS o ON o.source_id = l.opportunity_id AND NOT o.is_deleted
    WHERE NOT l.is_deleted AND l.sku IS NOT NULL
    UNION
    SELECT sku, 'a ' || source_system || ' invoice' FROM {{ ref('invoice_line') }}
    WHERE sku IS NOT NULL
),

catalog AS (
    SELECT DISTINCT source_system, sku FROM {{ ref('product') }}
    WHERE NOT is_deleted AND sku IS NOT NULL
),

systems AS (
    SELECT unnest(['crm', 'billing', 'erp']) AS source_system
)

SELECT 'account_parent_missing' AS rule, 'customer' AS entity, 'crm' AS source_system,
    a.source_id, 'parent_id' AS field,
    'parent account ' || a.parent_id || ' does not exist' AS detail
FROM accounts AS a
WHERE a.parent_id IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM accounts AS p WHERE p.source_id = a.parent_id)

UNION ALL

SELECT DISTINCT 'account_hierarchy_cycle', 'customer', 'crm', start_id, 'parent_id',
    'account is its own ancestor ' || depth || ' levels up'
FROM ancestry
WHERE current_id = start_id

UNION ALL

SELECT 'legal_entity_missing', 'customer', 'crm', source_id, 'legal_entity',
    'account has no legal entity'
FROM accounts
WHERE legal_entity IS NULL

UNION ALL

SELECT 'legal_entity_unmapped', 'customer', 'crm', a.source_id, 'legal_entity',
    'legal entity ' || a.legal_entity || ' maps to no ERP subsidiary'
FROM accounts AS a
WHERE a.legal_entity IS NOT NULL
    AND upper(a.legal_entity) NOT IN (SELECT legal_entity FROM entity_codes)

UNION ALL

SELECT 'tax_jurisdiction_missing', 'customer', 'crm', source_id, 'tax_jurisdiction',
    'account has no tax jurisdiction'
FROM accounts
WHERE tax_jurisdiction IS NULL

UNION ALL

SELECT 'sku_unaligned', 'product', s.source_system, u.sku, 'sku',
    'SKU ' || u.sku || ' used on ' || min(u.used_on) || ' has no product in ' || s.source_system
FROM used_skus AS u
CROSS JOIN systems AS s
WHERE NOT EXISTS (
    SELECT 1 FROM catalog AS c WHERE c.source_system = s.source_system AND c.sku = u.sku
)
GROUP BY s.source_system, u.sku

UNION ALL

SELECT 'contract_term_missing', 'contract', 'crm', source_id, 'term_months',
    'closed-won opportunity has no contract term'
FROM won_opportunities
WHERE term_months IS NULL OR term_months <= 0

UNION ALL

SELECT 'contract_start_missing', 'contract', 'crm', source_id, 'start_date',
    CASE WHEN contract_id IS NULL THEN 'closed-won opportunity has no contract'
        ELSE 'contract ' || contract_id || ' has no start date' END
FROM won_opportunities
WHERE start_date IS NULL

UNION ALL

SELECT 'record_quarantined', q.table_name, q.source_system, q.source_id,
    min(q.column_name),
    string_agg(
        coalesce(q.column_name, 'row') || ': ' || q.rule || ' (value ' || coalesce(q.value, 'null') || ')',
        '; ' ORDER BY q.column_name, q.rule
    )
FROM {{ source('canonical', 'quarantine') }} AS q
WHERE q.table_name <> 'validation_issue'
    AND q.source_system IS NOT NULL AND q.source_id IS NOT NULL
GROUP BY q.table_name, q.source_system, q.source_id
