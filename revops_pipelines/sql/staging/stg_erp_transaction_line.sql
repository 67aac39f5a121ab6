-- ERP invoice and credit memo lines as typed columns: item, quantity, rate and amount in minor
-- units.
with parsed as (
    select
        id,
        coalesce(deleted, false) as is_deleted,
        from_json(
            payload,
            '{"transaction": "VARCHAR", "linesequencenumber": "INTEGER", "item": "VARCHAR",
              "quantity": "DOUBLE", "rate": "VARCHAR", "foreignamount": "VARCHAR",
              "memo": "VARCHAR"}'
        ) as p
    from {{ source('raw', 'erp_transaction_line') }}
)

select
    r.id as transaction_line_id,
    r.p.transaction as transaction_id,
    r.p.linesequencenumber as line_number,
    blank_null(r.p.item) as item_id,
    i.sku,
    r.p.quantity,
    cast(r.p.rate as decimal(38, 9)) as rate,
    to_minor(r.p.foreignamount, coalesce(t.currency_exponent, 2)) as amount_minor,
    t.currency,
    r.p.memo,
    r.is_deleted
from parsed as r
left join {{ ref('stg_erp_transaction') }} as t on t.transaction_id = r.p.transaction
left join {{ ref('stg_erp_item') }} as i on i.item_id = r.p.item
