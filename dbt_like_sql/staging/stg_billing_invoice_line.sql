-- One row per invoice line, numbered from 1 in the invoice's order.
with lines as (
    select
        r.id as invoice_id,
        coalesce(r.deleted, false) as is_deleted,
        unnest(
            from_json(
                r.payload->'$.lines.data',
                '[{"id": "VARCHAR", "amount": "VARCHAR", "currency": "VARCHAR",
                   "description": "VARCHAR", "quantity": "VARCHAR",
                   "period": {"start": "BIGINT", "end": "BIGINT"},
                   "pricing": {"price_details": {"price": "VARCHAR", "product": "VARCHAR"}}}]'
            )
        ) as line,
        generate_subscripts(from_json(r.payload->'$.lines.data', '["JSON"]'), 1) as line_number
    from {{ source('raw', 'billing_invoices') }} as r
)

select
    l.line.id as invoice_line_id,
    l.invoice_id,
    l.line_number,
    l.line.pricing.price_details.price as price_id,
    l.line.pricing.price_details.product as product_id,
    p.sku,
    l.line.description as description,
    cast(l.line.quantity as double) as quantity,
    cast(cast(l.line.amount as decimal(38, 0)) as bigint) as amount_minor,
    upper(l.line.currency) as currency,
    unix_to_utc(l.line.period."start") as period_start,
    unix_to_utc(l.line.period."end") as period_end,
    l.is_deleted
from lines as l
left join {{ ref('stg_billing_product') }} as p on p.product_id = l.line.pricing.price_details.product
