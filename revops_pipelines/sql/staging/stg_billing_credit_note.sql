-- Billing credit notes as typed columns: the invoice and customer credited, total in minor units,
-- status.
select
    r.id as credit_note_id,
    r.payload->>'$.invoice' as invoice_id,
    r.payload->>'$.customer' as customer_id,
    upper(r.payload->>'$.currency') as currency,
    cast(cast(r.payload->>'$.total' as decimal(38, 0)) as bigint) as total_minor,
    r.payload->>'$.status' as status,
    r.payload->>'$.reason' as reason,
    unix_to_utc(r.payload->>'$.created') as created_at,
    coalesce(r.deleted, false) as is_deleted
from {{ source('raw', 'billing_credit_notes') }} as r
