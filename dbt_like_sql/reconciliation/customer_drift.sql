-- Customer findings: missing in billing or the ERP, attribute mismatches, duplicates,
-- missing legal entity or tax jurisdiction, and records that match but are not linked.
WITH cust AS (
    SELECT *
    FROM {{ ref('customer') }}
    WHERE NOT coalesce(is_deleted, false)
),

m AS (SELECT * FROM {{ ref('recon_customer_match') }}),

cb AS (SELECT left_id AS crm_id, right_id AS billing_id FROM m WHERE pair = 'crm_billing' AND method = 'link'),
be AS (SELECT left_id AS billing_id, right_id AS erp_id FROM m WHERE pair = 'billing_erp' AND method = 'link'),
copies AS (SELECT left_id AS original_id, right_id AS copy_id, method AS system FROM m WHERE pair = 'copy_of'),

won_account AS (
    SELECT DISTINCT account_id
    FROM {{ ref('contract') }}
    WHERE is_won AND NOT coalesce(is_deleted, false)
),

finalized AS (
    SELECT source_id, customer_id, currency, total_minor
    FROM {{ ref('invoice') }}
    WHERE source_system = 'billing' AND finalized_at IS NOT NULL AND coalesce(status, '') <> 'draft'
),

-- Legal entities that have an ERP subsidiary.
entity AS (
    SELECT upper(trim(legal_entity)) AS legal_entity FROM seeds.legal_entity_subsidiaries
    UNION
    SELECT DISTINCT upper(trim(legal_entity)) FROM cust WHERE source_system = 'erp' AND legal_entity IS NOT NULL
),

crm AS (SELECT * FROM cust WHERE source_system = 'crm' AND source_id NOT IN (SELECT copy_id FROM copies WHERE system = 'crm')),
bil AS (SELECT * FROM cust WHERE source_system = 'billing' AND source_id NOT IN (SELECT copy_id FROM copies WHERE system = 'billing')),
erp AS (SELECT * FROM cust WHERE source_system = 'erp' AND source_id NOT IN (SELECT copy_id FROM copies WHERE system = 'erp')),

-- CRM accounts that cannot be posted: they block their customers' ERP records.
unpostable AS (
    SELECT
        c.source_id AS crm_id,
        c.currency,
        CASE
            WHEN nullif(trim(c.legal_entity), '') IS NULL THEN 'legal_entity'
            WHEN nullif(trim(c.tax_jurisdiction), '') IS NULL THEN 'tax_jurisdiction'
            ELSE 'legal_entity'
        END AS field,
        CASE
            WHEN nullif(trim(c.legal_entity), '') IS NULL OR nullif(trim(c.tax_jurisdiction), '') IS NULL THEN NULL
            ELSE c.legal_entity
        END AS actual
    FROM crm AS c
    WHERE (c.source_id IN (SELECT account_id FROM won_account) OR c.source_id IN (SELECT crm_id FROM cb))
      AND (
          nullif(trim(c.legal_entity), '') IS NULL
          OR nullif(trim(c.tax_jurisdiction), '') IS NULL
          OR upper(trim(c.legal_entity)) NOT IN (SELECT legal_entity FROM entity)
      )
),

billing_in_erp AS (
    SELECT billing_id FROM be
    UNION
    SELECT left_id FROM m WHERE pair = 'billing_erp' AND method = 'name'
),

-- Billing customers the ERP should hold: with a subscription or an invoice (drafts count).
billing_expected AS (
    SELECT b.*
    FROM bil AS b
    WHERE b.source_id IN (SELECT customer_id FROM {{ ref('subscription') }})
       OR b.source_id IN (SELECT customer_id FROM {{ ref('invoice') }} WHERE source_system = 'billing')
),

missing_money AS (
    SELECT b.source_id AS billing_id, sum(f.total_minor) AS amount
    FROM billing_expected AS b
    JOIN finalized AS f ON f.customer_id = b.source_id AND f.currency = upper(b.currency)
    GROUP BY b.source_id
),

-- Value of every compared attribute in every system of a linked group.
grp AS (
    SELECT
        coalesce(cb.billing_id, be.billing_id) AS billing_id,
        cb.crm_id,
        be.erp_id
    FROM cb FULL OUTER JOIN be ON cb.billing_id = be.billing_id
),

attr AS (
    SELECT g.crm_id, g.billing_id, g.erp_id, 'crm' AS system, a.field, a.value, a.norm
    FROM grp AS g
    JOIN crm AS c ON c.source_id = g.crm_id
    CROSS JOIN LATERAL (VALUES
        ('name', c.name, c.name_norm),
        ('country', c.country, upper(nullif(trim(c.country), ''))),
        ('legal_entity', c.legal_entity, upper(nullif(trim(c.legal_entity), ''))),
        ('tax_jurisdiction', c.tax_jurisdiction, upper(nullif(trim(c.tax_jurisdiction), ''))),
        ('currency', c.currency, upper(nullif(trim(c.currency), '')))
    ) AS a(field, value, norm)
    UNION ALL
    SELECT g.crm_id, g.billing_id, g.erp_id, 'billing', a.field, a.value, a.norm
    FROM grp AS g
    JOIN bil AS b ON b.source_id = g.billing_id
    CROSS JOIN LATERAL (VALUES
        ('name', b.name, b.name_norm),
        ('email', b.email, nullif(b.email_norm, '')),
        ('country', b.country, upper(nullif(trim(b.country), ''))),
        ('legal_entity', b.legal_entity, upper(nullif(trim(b.legal_entity), ''))),
        ('currency', b.currency, upper(nullif(trim(b.currency), '')))
    ) AS a(field, value, norm)
    UNION ALL
    SELECT g.crm_id, g.billing_id, g.erp_id, 'erp', a.field, a.value, a.norm
    FROM grp AS g
    JOIN erp AS e ON e.source_id = g.erp_id
    CROSS JOIN LATERAL (VALUES
        ('name', e.name, e.name_norm),
        ('email', e.email, nullif(e.email_norm, '')),
        ('legal_entity', e.legal_entity, upper(nullif(trim(e.legal_entity), ''))),
        ('tax_jurisdiction', e.tax_jurisdiction, upper(nullif(trim(e.tax_jurisdiction), ''))),
        ('currency', e.currency, upper(nullif(trim(e.currency), '')))
    ) AS a(field, value, norm)
),

-- The system of record per field: CRM for name/address/entity/tax, billing for email/currency;
-- where that system is not in the group, billing stands in for the CRM.
sor AS (
    SELECT DISTINCT ON (crm_id, billing_id, erp_id, field)
        crm_id, billing_id, erp_id, field, system AS sor_system, value AS sor_value, norm AS sor_norm
    FROM attr
    ORDER BY crm_id, billing_id, erp_id, field,
        CASE
            WHEN field IN ('email', 'currency') THEN CASE system WHEN 'billing' THEN 0 WHEN 'crm' THEN 1 ELSE 2 END
            ELSE CASE system WHEN 'crm' THEN 0 WHEN 'billing' THEN 1 ELSE 2 END
        END
),

attribute_mismatch AS (
    SELECT
        s.crm_id, s.billing_id, s.erp_id, s.field, s.sor_value AS expected,
        min(a.value) AS actual,
        bool_and(a.system = 'erp') AS only_erp,
        string_agg(DISTINCT a.system, ',' ORDER BY a.system) AS systems
    FROM sor AS s
    JOIN attr AS a
        ON a.crm_id IS NOT DISTINCT FROM s.crm_id
       AND a.billing_id IS NOT DISTINCT FROM s.billing_id
       AND a.erp_id IS NOT DISTINCT FROM s.erp_id
       AND a.field = s.field
       AND a.system <> s.sor_system
    WHERE s.sor_norm IS NOT NULL
      AND a.norm IS DISTINCT FROM s.sor_norm
      -- An entity with no ERP subsidiary is reported as customer_missing_tax_or_entity.
      AND NOT (s.field = 'legal_entity' AND s.crm_id IN (SELECT crm_id FROM unpostable))
    GROUP BY ALL
),

found AS (
SELECT
    'customer_missing_in_billing' AS drift_type, 'customer' AS entity,
    c.source_id AS crm_id, NULL AS billing_id, NULL AS erp_id, NULL AS field,
    NULL AS expected, NULL AS actual, NULL::BIGINT AS amount_impact_minor, NULL AS currency,
    'review' AS action,
    'Create the billing customer for CRM account ' || c.source_id || ' (' || c.name || ') and link it' AS suggested_action
FROM crm AS c
WHERE c.source_id IN (SELECT account_id FROM won_account)
  AND c.source_id NOT IN (SELECT left_id FROM m WHERE pair = 'crm_billing')

UNION ALL
SELECT
    'customer_missing_in_erp', 'customer',
    (SELECT min(crm_id) FROM cb WHERE cb.billing_id = b.source_id), b.source_id, NULL, NULL,
    NULL, NULL, mm.amount, upper(b.currency),
    'auto', 'Upsert ERP customer with external id ' || b.source_id || ', then its invoices and payments'
FROM billing_expected AS b
LEFT JOIN missing_money AS mm ON mm.billing_id = b.source_id
WHERE b.source_id NOT IN (SELECT billing_id FROM billing_in_erp)
  AND b.source_id NOT IN (SELECT billing_id FROM cb WHERE crm_id IN (SELECT crm_id FROM unpostable))

UNION ALL
SELECT
    'customer_missing_tax_or_entity', 'customer',
    u.crm_id, cb.billing_id, be.erp_id, u.field,
    NULL, u.actual,
    CASE WHEN cb.billing_id IS NOT NULL AND be.erp_id IS NULL THEN mm.amount END,
    CASE WHEN cb.billing_id IS NOT NULL AND be.erp_id IS NULL AND mm.amount IS NOT NULL THEN upper(u.currency) END,
    'review',
    'Set ' || u.field || ' on CRM account ' || u.crm_id || ' to a value with an ERP subsidiary; ERP posting is blocked until then'
FROM unpostable AS u
LEFT JOIN (SELECT crm_id, min(billing_id) AS billing_id FROM cb GROUP BY crm_id) AS cb ON cb.crm_id = u.crm_id
LEFT JOIN (SELECT billing_id, min(erp_id) AS erp_id FROM be GROUP BY billing_id) AS be ON be.billing_id = cb.billing_id
LEFT JOIN missing_money AS mm ON mm.billing_id = cb.billing_id

UNION ALL
SELECT
    'customer_attribute_mismatch', 'customer',
    crm_id, billing_id, erp_id, field,
    expected, actual, NULL, NULL,
    CASE WHEN only_erp THEN 'auto' ELSE 'review' END,
    CASE
        WHEN only_erp THEN 'Update ERP customer ' || erp_id || ' ' || field || ' to ''' || expected || ''''
        ELSE 'Decide the right ' || field || ' (system of record says ''' || expected || ''', ' || systems || ' differ)'
    END
FROM attribute_mismatch

UNION ALL
SELECT
    'customer_duplicate', 'customer',
    CASE WHEN c.system = 'crm' THEN c.copy_id ELSE nullif(trim(d.crm_account_id), '') END,
    CASE WHEN c.system = 'billing' THEN c.copy_id WHEN c.system = 'erp' THEN nullif(trim(d.billing_customer_id), '') END,
    CASE WHEN c.system = 'erp' THEN c.copy_id END,
    NULL, c.original_id, c.copy_id, NULL, NULL,
    'review', 'Merge ' || c.system || ' record ' || c.copy_id || ' into ' || c.original_id
FROM copies AS c
JOIN cust AS d ON d.source_system = c.system AND d.source_id = c.copy_id

UNION ALL
SELECT
    'customer_duplicate', 'customer',
    left_id, right_id, NULL, NULL, NULL, right_id, NULL, NULL,
    'review', 'Billing customer ' || right_id || ' repeats CRM account ' || left_id || ', which is linked to another billing customer: merge'
FROM m WHERE pair = 'crm_billing' AND method = 'duplicate'

UNION ALL
SELECT
    'unlinked_match', 'customer',
    left_id, right_id, NULL, 'crm_account_id', left_id, NULL, NULL, NULL,
    'auto', 'Set crm_account_id=' || left_id || ' on billing customer ' || right_id || ' and the billing link on the CRM account'
FROM m WHERE pair = 'crm_billing' AND method = 'name'

UNION ALL
-- One side holds the link, the other side's link field is empty.
SELECT
    'unlinked_match', 'customer',
    cb.crm_id, cb.billing_id,
    NULL,
    CASE WHEN b.crm_link IS NULL THEN 'crm_account_id' ELSE 'billing_customer_id' END,
    CASE WHEN b.crm_link IS NULL THEN cb.crm_id ELSE cb.billing_id END,
    NULL, NULL, NULL,
    'auto',
    CASE WHEN b.crm_link IS NULL
        THEN 'Set crm_account_id=' || cb.crm_id || ' on billing customer ' || cb.billing_id
        ELSE 'Set the billing customer link ' || cb.billing_id || ' on CRM account ' || cb.crm_id
    END
FROM cb
JOIN (SELECT source_id, nullif(trim(crm_account_id), '') AS crm_link FROM bil) AS b ON b.source_id = cb.billing_id
JOIN (SELECT source_id, nullif(trim(billing_customer_id), '') AS billing_link FROM crm) AS c ON c.source_id = cb.crm_id
WHERE b.crm_link IS NULL OR c.billing_link IS NULL

UNION ALL
SELECT
    'unlinked_match', 'customer',
    NULL, left_id, right_id, 'billing_customer_id', left_id, NULL, NULL, NULL,
    'auto', 'Set external id ' || left_id || ' on ERP customer ' || right_id
FROM m WHERE pair = 'billing_erp' AND method = 'name'
)

SELECT *, NULL::VARCHAR AS correlation_id, NULL::VARCHAR AS key_extra FROM found
