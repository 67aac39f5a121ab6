-- ERP customers (SuiteQL rows): externalid is the billing customer id.
-- Each payload is parsed once into a struct of texts (as `->>` would read each field).
WITH parsed AS (
    SELECT
        id,
        deleted,
        from_json(
            payload,
            '{"externalid": "VARCHAR", "entityid": "VARCHAR", "companyname": "VARCHAR",
              "email": "VARCHAR", "subsidiary": "VARCHAR", "currency": "VARCHAR",
              "custentity_crm_account_id": "VARCHAR", "custentity_tax_jurisdiction": "VARCHAR",
              "isinactive": "VARCHAR", "datecreated": "VARCHAR", "lastmodifieddate": "VARCHAR"}'
        ) AS p
    FROM {{ source('raw', 'erp_customer') }}
)

SELECT
    r.id AS customer_id,
    blank_null(r.p.externalid) AS billing_customer_id,
    r.p.entityid AS entity_id,
    blank_null(r.p.companyname) AS name,
    normalize_text(r.p.companyname) AS name_norm,
    blank_null(r.p.email) AS email,
    normalize_text(blank_null(r.p.email)) AS email_norm,
    blank_null(r.p.subsidiary) AS subsidiary_id,
    c.currency,
    blank_null(r.p.custentity_crm_account_id) AS crm_account_id,
    blank_null(r.p.custentity_tax_jurisdiction) AS tax_jurisdiction,
    coalesce(ns_bool(r.p.isinactive), FALSE) AS is_inactive,
    cast(r.p.datecreated AS TIMESTAMPTZ) AS created_at,
    cast(r.p.lastmodifieddate AS TIMESTAMPTZ) AS updated_at,
    coalesce(r.deleted, FALSE) AS is_deleted
FROM parsed AS r
LEFT JOIN {{ ref('stg_erp_currency') }} AS c ON c.currency_id = r.p.currency
