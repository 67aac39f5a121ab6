-- Billing customers; Stripe currencies are lowercase, canonical ones uppercase.
-- Each payload is parsed once into a struct of texts (as `->>` would read each field).
WITH parsed AS (
    SELECT
        id,
        deleted,
        from_json(
            payload,
            '{"name": "VARCHAR", "email": "VARCHAR", "currency": "VARCHAR",
              "address": {"country": "VARCHAR"},
              "metadata": {"crm_account_id": "VARCHAR", "legal_entity": "VARCHAR",
                           "tax_jurisdiction": "VARCHAR"},
              "created": "VARCHAR", "deleted": "VARCHAR"}'
        ) AS p
    FROM {{ source('raw', 'billing_customer') }}
)

SELECT
    r.id AS customer_id,
    blank_null(r.p.name) AS name,
    normalize_text(r.p.name) AS name_norm,
    blank_null(r.p.email) AS email,
    normalize_text(blank_null(r.p.email)) AS email_norm,
    upper(blank_null(r.p.currency)) AS currency,
    blank_null(r.p.address.country) AS country,
    upper(blank_null(r.p.address.country)) AS country_norm,
    blank_null(r.p.metadata.crm_account_id) AS crm_account_id,
    blank_null(r.p.metadata.legal_entity) AS legal_entity,
    blank_null(r.p.metadata.tax_jurisdiction) AS tax_jurisdiction,
    unix_to_utc(r.p.created) AS created_at,
    coalesce(r.deleted, FALSE) OR coalesce(cast(r.p.deleted AS BOOLEAN), FALSE) AS is_deleted
FROM parsed AS r
