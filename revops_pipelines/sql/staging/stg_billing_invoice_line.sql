-- One row per invoice line, numbered from 1 in the invoice's order.
WITH numbered AS (
    SELECT
        invoice_id,
        is_deleted,
        minor_shift,
        unnest(lines.data) AS line,
        unnest(generate_series(1, len(lines.data))) AS line_number
    FROM {{ ref('stg_billing_invoice') }}
)

SELECT
    l.line.id AS invoice_line_id,
    l.invoice_id,
    cast(l.line_number AS INTEGER) AS line_number,
    l.line.pricing.price_details.price AS price_id,
    l.line.pricing.price_details.product AS product_id,
    p.sku,
    l.line.description AS description,
    cast(l.line.quantity AS DOUBLE) AS quantity,
    billing_minor(l.line.amount, l.minor_shift) AS amount_minor,
    upper(l.line.currency) AS currency,
    unix_to_utc(l.line.period."start") AS period_start,
    unix_to_utc(l.line.period."end") AS period_end,
    l.is_deleted
FROM numbered AS l
LEFT JOIN {{ ref('stg_billing_product') }} AS p ON p.product_id = l.line.pricing.price_details.product
