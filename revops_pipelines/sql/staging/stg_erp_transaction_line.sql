-- ERP invoice and credit memo lines as typed columns: item, quantity, rate and amount in minor
-- units.
WITH parsed AS (
    SELECT
        id,
        coalesce(deleted, FALSE) AS is_deleted,
        from_json(
            payload,
            '{"transaction": "VARCHAR", "linesequencenumber": "INTEGER", "item": "VARCHAR",
              "quantity": "DOUBLE", "rate": "VARCHAR", "foreignamount": "VARCHAR",
              "memo": "VARCHAR"}'
        ) AS p
    FROM {{ source('raw', 'erp_transaction_line') }}
)

SELECT
    r.id AS transaction_line_id,
    r.p.transaction AS transaction_id,
    r.p.linesequencenumber AS line_number,
    blank_null(r.p.item) AS item_id,
    i.sku,
    r.p.quantity,
    cast(r.p.rate AS DECIMAL(38, 9)) AS rate,
    to_minor(r.p.foreignamount, coalesce(t.currency_exponent, 2)) AS amount_minor,
    t.currency,
    r.p.memo,
    r.is_deleted
FROM parsed AS r
LEFT JOIN {{ ref('stg_erp_transaction') }} AS t ON t.transaction_id = r.p.transaction
LEFT JOIN {{ ref('stg_erp_item') }} AS i ON i.item_id = r.p.item
