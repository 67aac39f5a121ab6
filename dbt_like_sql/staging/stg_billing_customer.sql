-- Billing customers; Stripe currencies are lowercase, canonical ones uppercase.
select
    r.id as customer_id,
    blank_null(r.payload->>'$.name') as name,
    normalize_text(r.payload->>'$.name') as name_norm,
    blank_null(r.payload->>'$.email') as email,
    normalize_text(blank_null(r.payload->>'$.email')) as email_norm,
    upper(blank_null(r.payload->>'$.currency')) as currency,
    blank_null(r.payload->>'$.address.country') as country,
    upper(blank_null(r.payload->>'$.address.country')) as country_norm,
    blank_null(r.payload->>'$.metadata.crm_account_id') as crm_account_id,
    blank_null(r.payload->>'$.metadata.legal_entity') as legal_entity,
    blank_null(r.payload->>'$.metadata.tax_jurisdiction') as tax_jurisdiction,
    unix_to_utc(r.payload->>'$.created') as created_at,
    coalesce(r.deleted, false) or coalesce(cast(r.payload->>'$.deleted' as boolean), false)
        as is_deleted
from {{ source('raw', 'billing_customers') }} as r
