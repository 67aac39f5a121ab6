select
    r.id as transaction_line_id,
    r.payload->>'$.transaction' as transaction_id,
    cast(r.payload->>'$.linesequencenumber' as integer) as line_number,
    blank_null(r.payload->>'$.item') as item_id,
    i.sku,
    cast(r.payload->>'$.quantity' as double) as quantity,
    cast(cast(r.payload->>'$.rate' as varchar) as decimal(38, 9)) as rate,
    to_minor(r.payload->>'$.foreignamount', coalesce(t.currency_exponent, 2)) as amount_minor,
    t.currency,
    r.payload->>'$.memo' as memo,
    coalesce(r.deleted, false) as is_deleted
from {{ source('raw', 'erp_transactionline') }} as r
left join {{ ref('stg_erp_transaction') }} as t on t.transaction_id = r.payload->>'$.transaction'
left join {{ ref('stg_erp_item') }} as i on i.item_id = r.payload->>'$.item'
