-- Live customer records and how they pair across systems.
-- One row per record (system, id) with its role: `primary`, or `copy` for a later duplicate
-- (same normalized name, email and country in one system); and the pairs found
-- through link fields (either side) or, where both link fields are empty, by name.
WITH live AS (
    SELECT
        *,
        nullif(trim(crm_account_id), '') AS crm_link,
        nullif(trim(billing_customer_id), '') AS billing_link,
        upper(nullif(trim(country), '')) AS country_norm
    FROM {{ ref('customer') }}
    WHERE NOT coalesce(is_deleted, FALSE)
),

-- A record without a name (the real APIs allow it) still pairs through its links, but is
-- nobody's copy: copies are found by name.
ranked AS (
    SELECT
        *,
        CASE WHEN name_norm IS NULL THEN 1 ELSE row_number() OVER (
            PARTITION BY source_system, name_norm, coalesce(email_norm, ''), coalesce(country_norm, '')
            ORDER BY created_at NULLS LAST, source_id
        ) END AS copy_no,
        CASE WHEN name_norm IS NULL THEN source_id ELSE first_value(source_id) OVER (
            PARTITION BY source_system, name_norm, coalesce(email_norm, ''), coalesce(country_norm, '')
            ORDER BY created_at NULLS LAST, source_id
        ) END AS original_id
    FROM live
),

crm AS (SELECT * FROM ranked WHERE source_system = 'crm' AND copy_no = 1),
bil AS (SELECT * FROM ranked WHERE source_system = 'billing' AND copy_no = 1),
erp AS (SELECT * FROM ranked WHERE source_system = 'erp' AND copy_no = 1),

-- CRM <-> billing through link fields; a link stored on one side only still pairs them.
cb_linked AS (
    SELECT c.source_id AS crm_id, b.source_id AS billing_id
    FROM bil AS b JOIN crm AS c ON b.crm_link = c.source_id
    UNION
    SELECT c.source_id AS crm_id, b.source_id AS billing_id
    FROM crm AS c JOIN bil AS b ON c.billing_link = b.source_id
),

be_linked AS (
    SELECT b.source_id AS billing_id, e.source_id AS erp_id
    FROM erp AS e JOIN bil AS b ON e.billing_link = b.source_id
),

-- Name candidates: a billing record with no CRM link against CRM accounts of its country.
cb_candidates AS (
    SELECT
        c.source_id AS crm_id,
        b.source_id AS billing_id,
        jaro_winkler_similarity(c.name_norm, b.name_norm) AS score,
        c.source_id IN (SELECT crm_id FROM cb_linked) AS crm_already_linked
    FROM bil AS b
    JOIN crm AS c ON c.country_norm = b.country_norm
    WHERE b.crm_link IS NULL
      AND b.source_id NOT IN (SELECT billing_id FROM cb_linked)
      AND (c.billing_link IS NULL OR c.source_id IN (SELECT crm_id FROM cb_linked))
),

-- ERP candidates also agree on email; the ERP has no country of its own.
be_candidates AS (
    SELECT
        e.source_id AS erp_id,
        b.source_id AS billing_id,
        jaro_winkler_similarity(e.name_norm, b.name_norm) AS score
    FROM erp AS e
    JOIN bil AS b ON e.email_norm = b.email_norm
    WHERE e.billing_link IS NULL
      AND b.source_id NOT IN (SELECT billing_id FROM be_linked)
      AND (e.country_norm IS NULL OR e.country_norm = b.country_norm)
),

-- Best candidate on both sides, and a unique best: a tie names no match.
cb_best AS (
    SELECT *, count(*) OVER (PARTITION BY crm_id) AS n_crm, count(*) OVER (PARTITION BY billing_id) AS n_bil
    FROM (
        SELECT *, max(score) OVER (PARTITION BY crm_id) AS best_crm, max(score) OVER (PARTITION BY billing_id) AS best_bil
        FROM cb_candidates WHERE score >= {{ var('name_match_threshold') }}
    )
    WHERE score = best_crm AND score = best_bil
),

be_best AS (
    SELECT *, count(*) OVER (PARTITION BY erp_id) AS n_erp, count(*) OVER (PARTITION BY billing_id) AS n_bil
    FROM (
        SELECT *, max(score) OVER (PARTITION BY erp_id) AS best_erp, max(score) OVER (PARTITION BY billing_id) AS best_bil
        FROM be_candidates WHERE score >= {{ var('name_match_threshold') }}
    )
    WHERE score = best_erp AND score = best_bil
)

SELECT 'crm_billing' AS pair, crm_id AS left_id, billing_id AS right_id, 'link' AS method, NULL::DOUBLE AS score
FROM cb_linked
UNION ALL
SELECT 'crm_billing', crm_id, billing_id, CASE WHEN crm_already_linked THEN 'duplicate' ELSE 'name' END, score
FROM cb_best WHERE n_crm = 1 AND n_bil = 1
UNION ALL
SELECT 'billing_erp', billing_id, erp_id, 'link', NULL FROM be_linked
UNION ALL
SELECT 'billing_erp', billing_id, erp_id, 'name', score FROM be_best WHERE n_erp = 1 AND n_bil = 1
UNION ALL
SELECT 'copy_of', original_id, source_id, source_system, NULL FROM ranked WHERE copy_no > 1
