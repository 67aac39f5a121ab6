-- One row per real customer: the records the link fields join, across the three systems.
-- Links: CRM account ↔ billing customer (either side's link field), billing ↔ ERP (ERP
-- externalid), ERP ↔ CRM (custentity_crm_account_id). Deleted records are history and
-- take no part. Records joined only through others (a chain) still end in one row.
WITH RECURSIVE nodes AS (
    SELECT 'crm:' || account_id AS node FROM {{ ref('stg_crm_account') }} WHERE NOT is_deleted
    UNION ALL
    SELECT 'billing:' || customer_id FROM {{ ref('stg_billing_customer') }} WHERE NOT is_deleted
    UNION ALL
    SELECT 'erp:' || customer_id FROM {{ ref('stg_erp_customer') }} WHERE NOT is_deleted
),

link_fields AS (
    SELECT 'crm:' || account_id AS a, 'billing:' || billing_customer_id AS b
    FROM {{ ref('stg_crm_account') }}
    WHERE NOT is_deleted AND billing_customer_id IS NOT NULL
    UNION ALL
    SELECT 'billing:' || customer_id, 'crm:' || crm_account_id
    FROM {{ ref('stg_billing_customer') }}
    WHERE NOT is_deleted AND crm_account_id IS NOT NULL
    UNION ALL
    SELECT 'erp:' || customer_id, 'billing:' || billing_customer_id
    FROM {{ ref('stg_erp_customer') }}
    WHERE NOT is_deleted AND billing_customer_id IS NOT NULL
    UNION ALL
    SELECT 'erp:' || customer_id, 'crm:' || crm_account_id
    FROM {{ ref('stg_erp_customer') }}
    WHERE NOT is_deleted AND crm_account_id IS NOT NULL
),

live_links AS (
    SELECT l.a, l.b
    FROM link_fields AS l
    SEMI JOIN nodes AS na ON na.node = l.a
    SEMI JOIN nodes AS nb ON nb.node = l.b
),

edges AS (
    SELECT a, b FROM live_links
    UNION
    SELECT b, a FROM live_links
),

reach(node, reached) AS (
    SELECT node, node FROM nodes
    UNION
    SELECT r.node, e.b
    FROM reach AS r
    INNER JOIN edges AS e ON e.a = r.reached
),

components AS (
    SELECT node, min(reached) AS component
    FROM reach
    GROUP BY node
)

SELECT
    component AS xref_id,
    min(substr(node, 5)) FILTER (WHERE node LIKE 'crm:%') AS crm_account_id,
    min(substr(node, 9)) FILTER (WHERE node LIKE 'billing:%') AS billing_customer_id,
    min(substr(node, 5)) FILTER (WHERE node LIKE 'erp:%') AS erp_customer_id,
    CASE WHEN count(*) > 1 THEN 'link' ELSE 'none' END AS link_method,
    count(*) FILTER (WHERE node LIKE 'crm:%') AS crm_records,
    count(*) FILTER (WHERE node LIKE 'billing:%') AS billing_records,
    count(*) FILTER (WHERE node LIKE 'erp:%') AS erp_records
FROM components
GROUP BY component
