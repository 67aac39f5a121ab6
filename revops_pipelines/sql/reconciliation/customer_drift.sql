-- Customer findings: missing in billing or the ERP, attribute mismatches, duplicates,
-- missing legal entity or tax jurisdiction, and records that match but are not linked.
WITH cust AS (
    SELECT *
    FROM {{ ref('customer') }}
    WHERE NOT coalesce(is_deleted, FALSE)
),

m AS (SELECT * FROM {{ ref('customer_match') }}),

cb AS (SELECT left_id AS crm_id, right_id AS billing_id FROM m WHERE pair = 'crm_billing' AND method = 'link'),
be AS (SELECT left_id AS billing_id, right_id AS erp_id FROM m WHERE pair = 'billing_erp' AND method = 'link'),
copies AS (SELECT left_id AS original_id, right_id AS copy_id, method AS system FROM m WHERE pair = 'copy_of'),

won_account AS (
    SELECT DISTINCT account_id
    FROM {{ ref('contract') }}
    WHERE is_won AND NOT coalesce(is_deleted, FALSE)
),

finalized AS (
    SELECT source_id, customer_id, currency, total_minor
    FROM {{ ref('invoice') }}
    WHERE source_system = 'billing' AND finalized_at IS NOT NULL AND coalesce(status, '') <> 'draft'
),

-- Legal entities that have an ERP subsidiary: the ERP's answer, never a list of our own.
entity AS (
    SELECT DISTINCT legal_entity FROM {{ ref('legal_entity_subsidiary') }}
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
active_customer AS (
    SELECT customer_id FROM {{ ref('subscription') }}
    UNION
    SELECT customer_id FROM {{ ref('invoice') }} WHERE source_system = 'billing'
),

billing_expected AS (
    SELECT b.*
    FROM bil AS b
    SEMI JOIN active_customer AS a ON a.customer_id = b.source_id
),

billing_not_in_erp AS (
    SELECT b.source_id, upper(b.currency) AS currency
    FROM billing_expected AS b
    ANTI JOIN billing_in_erp AS e ON e.billing_id = b.source_id
),

missing_money AS (
    SELECT b.source_id AS billing_id, sum(f.total_minor) AS amount
    FROM billing_not_in_erp AS b
    JOIN finalized AS f ON f.customer_id = b.source_id AND f.currency = b.currency
    GROUP BY b.source_id
),

crm_of_billing AS (SELECT billing_id, min(crm_id) AS crm_id FROM cb GROUP BY billing_id),

-- Each linked group: a CRM account, billing customer and ERP customer, any of them absent.
grp AS (
    SELECT
        coalesce(cb.billing_id, be.billing_id) AS billing_id,
        cb.crm_id,
        be.erp_id
    FROM cb FULL OUTER JOIN be ON cb.billing_id = be.billing_id
),

-- The three joins happen once, on the group; unpivoting only by field keeps the comparison
-- at one row per group and field (one row per system was several times slower).
wide AS (
    SELECT
        g.crm_id, g.billing_id, g.erp_id,
        c.name AS c_name, c.name_norm AS c_name_n,
        c.country AS c_country, upper(nullif(trim(c.country), '')) AS c_country_n,
        c.legal_entity AS c_entity, upper(nullif(trim(c.legal_entity), '')) AS c_entity_n,
        c.tax_jurisdiction AS c_tax, upper(nullif(trim(c.tax_jurisdiction), '')) AS c_tax_n,
        c.currency AS c_currency, upper(nullif(trim(c.currency), '')) AS c_currency_n,
        b.name AS b_name, b.name_norm AS b_name_n,
        b.email AS b_email, nullif(b.email_norm, '') AS b_email_n,
        b.country AS b_country, upper(nullif(trim(b.country), '')) AS b_country_n,
        b.legal_entity AS b_entity, upper(nullif(trim(b.legal_entity), '')) AS b_entity_n,
        b.currency AS b_currency, upper(nullif(trim(b.currency), '')) AS b_currency_n,
        e.name AS e_name, e.name_norm AS e_name_n,
        e.email AS e_email, nullif(e.email_norm, '') AS e_email_n,
        e.legal_entity AS e_entity, upper(nullif(trim(e.legal_entity), '')) AS e_entity_n,
        e.tax_jurisdiction AS e_tax, upper(nullif(trim(e.tax_jurisdiction), '')) AS e_tax_n,
        e.currency AS e_currency, upper(nullif(trim(e.currency), '')) AS e_currency_n
    FROM grp AS g
    LEFT JOIN crm AS c ON c.source_id = g.crm_id
    LEFT JOIN bil AS b ON b.source_id = g.billing_id
    LEFT JOIN erp AS e ON e.source_id = g.erp_id
),

-- One row per group and field: each system's rank as the field's system of record (NULL where
-- it does not hold the field) and its value as stored and as compared (_n). CRM first for
-- name/address/entity/tax, billing first for email/currency; where a system is not in the group,
-- the next one stands in. The CRM has no email and the ERP's country is not compared.
group_field AS (
    SELECT crm_id, billing_id, erp_id, 'name' AS field,
        1 AS crm_rank, 2 AS billing_rank, 3 AS erp_rank,
        c_name AS crm, c_name_n AS crm_n, b_name AS billing, b_name_n AS billing_n,
        e_name AS erp, e_name_n AS erp_n
    FROM wide
    UNION ALL
    SELECT crm_id, billing_id, erp_id, 'email', NULL, 1, 2,
        NULL, NULL, b_email, b_email_n, e_email, e_email_n
    FROM wide
    UNION ALL
    SELECT crm_id, billing_id, erp_id, 'country', 1, 2, NULL,
        c_country, c_country_n, b_country, b_country_n, NULL, NULL
    FROM wide
    UNION ALL
    SELECT crm_id, billing_id, erp_id, 'legal_entity', 1, 2, 3,
        c_entity, c_entity_n, b_entity, b_entity_n, e_entity, e_entity_n
    FROM wide
    UNION ALL
    SELECT crm_id, billing_id, erp_id, 'tax_jurisdiction', 1, NULL, 2,
        c_tax, c_tax_n, NULL, NULL, e_tax, e_tax_n
    FROM wide
    UNION ALL
    SELECT crm_id, billing_id, erp_id, 'currency', 2, 1, 3,
        c_currency, c_currency_n, b_currency, b_currency_n, e_currency, e_currency_n
    FROM wide
),

-- The system of record is chosen by which records are linked, not by which hold a value:
-- a value missing there is customer_missing_tax_or_entity, never a mismatch.
with_sor AS (
    SELECT *,
        CASE least(
            CASE WHEN crm_id IS NOT NULL THEN crm_rank END,
            CASE WHEN billing_id IS NOT NULL THEN billing_rank END,
            CASE WHEN erp_id IS NOT NULL THEN erp_rank END
        )
            WHEN crm_rank THEN 'crm'
            WHEN billing_rank THEN 'billing'
            WHEN erp_rank THEN 'erp'
        END AS sor_system
    FROM group_field
),

compared AS (
    SELECT *,
        crm_id IS NOT NULL AND crm_rank IS NOT NULL AND sor_system <> 'crm'
            AND (crm_n IS DISTINCT FROM sor_norm) AS crm_differs,
        billing_id IS NOT NULL AND billing_rank IS NOT NULL AND sor_system <> 'billing'
            AND (billing_n IS DISTINCT FROM sor_norm) AS billing_differs,
        erp_id IS NOT NULL AND erp_rank IS NOT NULL AND sor_system <> 'erp'
            AND (erp_n IS DISTINCT FROM sor_norm) AS erp_differs
    FROM (
        SELECT *,
            CASE sor_system WHEN 'crm' THEN crm WHEN 'billing' THEN billing WHEN 'erp' THEN erp END
                AS expected,
            CASE sor_system
                WHEN 'crm' THEN crm_n WHEN 'billing' THEN billing_n WHEN 'erp' THEN erp_n
            END AS sor_norm
        FROM with_sor
    )
),

-- actual is the differing value furthest downstream; systems lists those that differ.
attribute_mismatch AS (
    SELECT crm_id, billing_id, erp_id, field, expected,
        CASE
            WHEN erp_differs THEN erp
            WHEN billing_differs THEN billing
            WHEN crm_differs THEN crm
        END AS actual,
        erp_differs AND NOT crm_differs AND NOT billing_differs AS only_erp,
        concat_ws(',',
            CASE WHEN billing_differs THEN 'billing' END,
            CASE WHEN crm_differs THEN 'crm' END,
            CASE WHEN erp_differs THEN 'erp' END
        ) AS systems
    FROM compared
    WHERE sor_norm IS NOT NULL AND (crm_differs OR billing_differs OR erp_differs)
      -- An entity with no ERP subsidiary is reported as customer_missing_tax_or_entity.
      AND (field <> 'legal_entity' OR crm_id IS NULL
          OR crm_id NOT IN (SELECT crm_id FROM unpostable))
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
    cob.crm_id, b.source_id, NULL, NULL,
    NULL, NULL, mm.amount, b.currency,
    'auto', 'Upsert ERP customer with external id ' || b.source_id || ', then its invoices and payments'
FROM billing_not_in_erp AS b
LEFT JOIN missing_money AS mm ON mm.billing_id = b.source_id
LEFT JOIN crm_of_billing AS cob ON cob.billing_id = b.source_id
WHERE NOT EXISTS (
    SELECT 1 FROM cb JOIN unpostable AS u ON u.crm_id = cb.crm_id WHERE cb.billing_id = b.source_id
)

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
