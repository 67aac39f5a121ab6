-- Applications of payments and credit memos (nextdoc) to invoices (previousdoc).
with parsed as (
    select
        id,
        coalesce(deleted, false) as is_deleted,
        from_json(
            payload,
            '{"previousdoc": "VARCHAR", "nextdoc": "VARCHAR", "linktype": "VARCHAR",
              "foreignamount": "VARCHAR"}'
        ) as p
    from {{ source('raw', 'erp_previous_transaction_link') }}
)

select
    r.id as link_id,
    r.p.previousdoc as previous_transaction_id,
    r.p.nextdoc as next_transaction_id,
    r.p.linktype as link_type,
    to_minor(r.p.foreignamount, coalesce(nxt.currency_exponent, prev.currency_exponent, 2))
        as amount_minor,
    coalesce(nxt.currency, prev.currency) as currency,
    r.is_deleted
from parsed as r
left join {{ ref('stg_erp_transaction') }} as nxt on nxt.transaction_id = r.p.nextdoc
left join {{ ref('stg_erp_transaction') }} as prev on prev.transaction_id = r.p.previousdoc
