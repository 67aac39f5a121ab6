-- One row per payment and the invoice it applies to. ERP amounts are what was applied to that
-- invoice (previoustransactionlink), so a payment split over invoices gives several rows.
with erp_payments as (
    select * from {{ ref('stg_erp_transaction') }}
    where transaction_type = 'CustPymt' and not is_deleted
),

erp_invoices as (
    select transaction_id, externalid from {{ ref('stg_erp_transaction') }}
    where transaction_type = 'CustInvc'
),

applications as (
    select * from {{ ref('stg_erp_previous_transaction_link') }}
    where link_type = 'Payment' and not is_deleted
)

select
    'billing' as source_system,
    p.invoice_payment_id as source_id,
    p.invoice_payment_id as billing_payment_id,
    p.invoice_id,
    p.invoice_id as billing_invoice_id,
    i.customer_id,
    -- amount_paid is null until the payment is paid: nothing paid yet
    coalesce(p.amount_paid_minor, 0) as amount_minor,
    p.currency,
    p.status,
    p.paid_at
from {{ ref('stg_billing_invoice_payment') }} as p
left join {{ ref('stg_billing_invoice') }} as i on i.invoice_id = p.invoice_id
where not p.is_deleted

union all

select
    'erp',
    p.transaction_id,
    p.externalid,
    a.previous_transaction_id,
    inv.externalid,
    p.entity_id,
    -- an unapplied payment still exists: one row with its whole amount and no invoice
    coalesce(a.amount_minor, p.total_minor),
    p.currency,
    'paid',
    cast(p.trandate as timestamptz)
from erp_payments as p
left join applications as a on a.next_transaction_id = p.transaction_id
left join erp_invoices as inv on inv.transaction_id = a.previous_transaction_id
