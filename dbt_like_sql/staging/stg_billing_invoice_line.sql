-- One row per invoice line, numbered from 1 in the invoice's order.
with parsed as (
    select
        r.id as invoice_id,
        coalesce(r.deleted, false) as is_deleted,
        -- the whole payload in one parse: extracting `$.lines.data` first would parse it twice
        from_json(
            r.payload,
            '{"lines": {"data": [{"id": "VARCHAR", "amount": "VARCHAR", "currency": "VARCHAR",
                                  "description": "VARCHAR", "quantity": "VARCHAR",
                                  "period": {"start": "BIGINT", "end": "BIGINT"},
                                  "pricing": {"price_details": {"price": "VARCHAR",
                                                                "product": "VARCHAR"}}}]}}'
        ).lines.data as lines
    from {{ source('raw', 'billing_invoices') }} as r
),

numbered as (
    select
        invoice_id,
        is_deleted,
        unnest(lines) as line,
        unnest(generate_series(1, len(lines))) as line_number
    from parsed
)

select
    l.line.id as invoice_line_id,
    l.invoice_id,
    cast(l.line_number as integer) as line_number,
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
from numbered as l
left join {{ ref('stg_billing_product') }} as p on p.product_id = l.line.pricing.price_details.product
