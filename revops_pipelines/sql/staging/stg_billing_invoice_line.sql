-- One row per invoice line, numbered from 1 in the invoice's order.
with numbered as (
    select
        invoice_id,
        is_deleted,
        minor_shift,
        unnest(lines.data) as line,
        unnest(generate_series(1, len(lines.data))) as line_number
    from {{ ref('stg_billing_invoice') }}
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
    billing_minor(l.line.amount, l.minor_shift) as amount_minor,
    upper(l.line.currency) as currency,
    unix_to_utc(l.line.period."start") as period_start,
    unix_to_utc(l.line.period."end") as period_end,
    l.is_deleted
from numbered as l
left join {{ ref('stg_billing_product') }} as p on p.product_id = l.line.pricing.price_details.product
