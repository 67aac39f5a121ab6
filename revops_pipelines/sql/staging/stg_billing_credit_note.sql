-- Billing credit notes as typed columns: the invoice and customer credited, total in minor units,
-- status.
-- Stripe amounts become ISO 4217 minor units (billing_minor).
select
    r.id as credit_note_id,
    r.payload->>'$.invoice' as invoice_id,
    r.payload->>'$.customer' as customer_id,
    upper(r.payload->>'$.currency') as currency,
    billing_minor(r.payload->>'$.total', ce.exponent - ce.billing_exponent) as total_minor,
    r.payload->>'$.status' as status,
    r.payload->>'$.reason' as reason,
    unix_to_utc(r.payload->>'$.created') as created_at,
    coalesce(r.deleted, false) as is_deleted
from {{ source('raw', 'billing_credit_note') }} as r
left join seeds.currency_exponents as ce on ce.currency = upper(r.payload->>'$.currency')
