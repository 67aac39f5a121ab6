-- One row per customer record in each system; the link fields as each system stores them.
-- A CRM or billing legal entity gets the ERP subsidiary that posts for it.
WITH subsidiary_by_entity AS (
    SELECT legal_entity, min(subsidiary_id) AS subsidiary_id
    FROM {{ ref('legal_entity_subsidiary') }}
    GROUP BY legal_entity
)

SELECT
    'crm' AS source_system,
    a.account_id AS source_id,
    a.account_id AS crm_account_id,
    a.billing_customer_id,
    cast(NULL AS VARCHAR) AS erp_customer_id,
    a.name,
    a.name_norm,
    cast(NULL AS VARCHAR) AS email,
    cast(NULL AS VARCHAR) AS email_norm,
    a.country_norm AS country,
    a.currency,
    a.legal_entity,
    a.tax_jurisdiction,
    s.subsidiary_id AS erp_subsidiary_id,
    a.parent_id,
    a.is_deleted,
    NOT a.is_deleted AS is_active,
    a.created_at,
    a.updated_at,
    cast(NULL AS VARCHAR) AS subsidiary_country
FROM {{ ref('stg_crm_account') }} AS a
LEFT JOIN subsidiary_by_entity AS s ON s.legal_entity = upper(a.legal_entity)

UNION ALL

SELECT
    'billing',
    c.customer_id,
    c.crm_account_id,
    c.customer_id,
    NULL,
    c.name,
    c.name_norm,
    c.email,
    c.email_norm,
    c.country_norm,
    c.currency,
    c.legal_entity,
    c.tax_jurisdiction,
    s.subsidiary_id,
    NULL,
    c.is_deleted,
    NOT c.is_deleted,
    c.created_at,
    c.created_at,
    NULL
FROM {{ ref('stg_billing_customer') }} AS c
LEFT JOIN subsidiary_by_entity AS s ON s.legal_entity = upper(c.legal_entity)

UNION ALL

SELECT
    'erp',
    c.customer_id,
    c.crm_account_id,
    c.billing_customer_id,
    c.customer_id,
    c.name,
    c.name_norm,
    c.email,
    c.email_norm,
    -- the ERP customer record has no address, so no country (subsidiary_country says where
    -- its books are kept, which is not the customer's country)
    cast(NULL AS VARCHAR),
    c.currency,
    e.legal_entity,
    c.tax_jurisdiction,
    c.subsidiary_id,
    NULL,
    c.is_deleted,
    not (c.is_deleted OR c.is_inactive),
    c.created_at,
    c.updated_at,
    upper(s.country)
FROM {{ ref('stg_erp_customer') }} AS c
LEFT JOIN {{ ref('stg_erp_subsidiary') }} AS s ON s.subsidiary_id = c.subsidiary_id
LEFT JOIN {{ ref('legal_entity_subsidiary') }} AS e ON e.subsidiary_id = c.subsidiary_id
