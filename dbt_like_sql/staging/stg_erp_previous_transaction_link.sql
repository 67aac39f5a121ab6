-- Applications of payments and credit memos (nextdoc) to invoices (previousdoc).
select
    r.id as link_id,
    r.payload->>'$.previousdoc' as previous_transaction_id,
    r.payload->>'$.nextdoc' as next_transaction_id,
    r.payload->>'$.linktype' as link_type,
    to_minor(
        r.payload->>'$.foreignamount',
        coalesce(nxt.currency_exponent, prev.currency_exponent, 2)
    ) as amount_minor,
    coalesce(nxt.currency, prev.currency) as currency,
    coalesce(r.deleted, false) as is_deleted
from {{ source('raw', 'erp_previoustransactionlink') }} as r
left join {{ ref('stg_erp_transaction') }} as nxt on nxt.transaction_id = r.payload->>'$.nextdoc'
left join {{ ref('stg_erp_transaction') }} as prev
    on prev.transaction_id = r.payload->>'$.previousdoc'
