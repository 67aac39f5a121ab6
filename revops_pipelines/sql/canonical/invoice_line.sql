-- Each billing invoice's lines: product, SKU, quantity, amount in minor units and service period.
select
    'billing' as source_system,
    l.invoice_line_id as source_id,
    l.invoice_id,
    l.line_number,
    l.product_id,
    l.sku,
    l.description,
    l.quantity,
    l.amount_minor,
    l.currency,
    l.period_start,
    l.period_end
from {{ ref('stg_billing_invoice_line') }} as l
where not l.is_deleted

union all

select
    'erp',
    l.transaction_line_id,
    l.transaction_id,
    l.line_number,
    l.item_id,
    l.sku,
    l.memo,
    l.quantity,
    l.amount_minor,
    l.currency,
    cast(null as timestamptz),
    cast(null as timestamptz)
from {{ ref('stg_erp_transaction_line') }} as l
inner join {{ ref('stg_erp_transaction') }} as t on t.transaction_id = l.transaction_id
where t.transaction_type = 'CustInvc' and not t.is_deleted and not l.is_deleted
