-- Billing customers; Stripe currencies are lowercase, canonical ones uppercase.
-- Each payload is parsed once into a struct of texts (as `->>` would read each field).
with parsed as (
    select
        id,
        deleted,
        from_json(
            payload,
            '{"name": "VARCHAR", "email": "VARCHAR", "currency": "VARCHAR",
              "address": {"country": "VARCHAR"},
              "metadata": {"crm_account_id": "VARCHAR", "legal_entity": "VARCHAR",
                           "tax_jurisdiction": "VARCHAR"},
              "created": "VARCHAR", "deleted": "VARCHAR"}'
        ) as p
    from {{ source('raw', 'billing_customer') }}
)

select
    r.id as customer_id,
    blank_null(r.p.name) as name,
    normalize_text(r.p.name) as name_norm,
    blank_null(r.p.email) as email,
    normalize_text(blank_null(r.p.email)) as email_norm,
    upper(blank_null(r.p.currency)) as currency,
    blank_null(r.p.address.country) as country,
    upper(blank_null(r.p.address.country)) as country_norm,
    blank_null(r.p.metadata.crm_account_id) as crm_account_id,
    blank_null(r.p.metadata.legal_entity) as legal_entity,
    blank_null(r.p.metadata.tax_jurisdiction) as tax_jurisdiction,
    unix_to_utc(r.p.created) as created_at,
    coalesce(r.deleted, false) or coalesce(cast(r.p.deleted as boolean), false) as is_deleted
from parsed as r
