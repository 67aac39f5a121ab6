-- Billing and ERP invoices in one shape; ERP statuses mapped to billing's vocabulary.
select
    'billing' as source_system,
    invoice_id as source_id,
    invoice_id as billing_invoice_id,
    customer_id,
    customer_id as billing_customer_id,
    subscription_id,
    number,
    status,
    status as status_raw,
    currency,
    subtotal_minor,
    tax_minor,
    total_minor,
    amount_remaining_minor,
    cast(created_at as date) as invoice_date,
    period_start,
    period_end,
    finalized_at,
    paid_at,
    is_finalized,
    created_at,
    greatest(created_at, finalized_at, paid_at, voided_at) as updated_at
from {{ ref('stg_billing_invoice') }}
where not is_deleted

union all

select
    'erp',
    t.transaction_id,
    t.externalid,
    t.entity_id,
    c.billing_customer_id,
    t.billing_subscription_id,
    t.tranid,
    case t.status
        when 'paidInFull' then 'paid'
        when 'open' then 'open'
        when 'voided' then 'void'
    end,
    t.status,
    t.currency,
    t.total_minor - coalesce(t.tax_minor, 0),
    coalesce(t.tax_minor, 0),
    t.total_minor,
    t.amount_remaining_minor,
    t.trandate,
    cast(null as timestamptz),
    cast(null as timestamptz),
    t.created_at,
    cast(null as timestamptz),
    true,
    t.created_at,
    t.updated_at
from {{ ref('stg_erp_transaction') }} as t
left join {{ ref('stg_erp_customer') }} as c on c.customer_id = t.entity_id
where t.transaction_type = 'CustInvc' and not t.is_deleted
