-- Billing credit notes and ERP credit memos (the memo's invoice comes from its link).
with memo_invoice as (
    select next_transaction_id, min(previous_transaction_id) as invoice_id
    from {{ ref('stg_erp_previous_transaction_link') }}
    where link_type = 'CreditMemo'
    group by next_transaction_id
)

select
    'billing' as source_system,
    credit_note_id as source_id,
    credit_note_id as billing_credit_note_id,
    invoice_id,
    customer_id,
    total_minor,
    currency,
    status,
    created_at
from {{ ref('stg_billing_credit_note') }}
where not is_deleted

union all

select
    'erp',
    t.transaction_id,
    t.externalid,
    m.invoice_id,
    t.entity_id,
    t.total_minor,
    t.currency,
    coalesce(t.status, 'issued'),
    coalesce(t.created_at, cast(t.trandate as timestamptz))
from {{ ref('stg_erp_transaction') }} as t
left join memo_invoice as m on m.next_transaction_id = t.transaction_id
where t.transaction_type = 'CustCred' and not t.is_deleted
