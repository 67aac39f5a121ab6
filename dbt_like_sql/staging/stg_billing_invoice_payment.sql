select
    r.id as invoice_payment_id,
    r.payload->>'$.invoice' as invoice_id,
    cast(cast(r.payload->>'$.amount_paid' as decimal(38, 0)) as bigint) as amount_paid_minor,
    cast(cast(r.payload->>'$.amount_requested' as decimal(38, 0)) as bigint) as amount_requested_minor,
    upper(r.payload->>'$.currency') as currency,
    r.payload->>'$.status' as status,
    coalesce(cast(r.payload->>'$.is_default' as boolean), false) as is_default,
    r.payload->>'$.payment.payment_intent' as payment_intent_id,
    unix_to_utc(r.payload->>'$.status_transitions.paid_at') as paid_at,
    unix_to_utc(r.payload->>'$.status_transitions.canceled_at') as canceled_at,
    unix_to_utc(r.payload->>'$.created') as created_at,
    coalesce(r.deleted, false) as is_deleted
from {{ source('raw', 'billing_invoice_payments') }} as r
