-- Applications of payments and credit memos (nextdoc) to invoices (previousdoc).
WITH parsed AS (
    SELECT
        id,
        coalesce(deleted, FALSE) AS is_deleted,
        from_json(
            payload,
            '{"previousdoc": "VARCHAR", "nextdoc": "VARCHAR", "linktype": "VARCHAR",
              "foreignamount": "VARCHAR"}'
        ) AS p
    FROM {{ source('raw', 'erp_previous_transaction_link') }}
)

SELECT
    r.id AS link_id,
    r.p.previousdoc AS previous_transaction_id,
    r.p.nextdoc AS next_transaction_id,
    r.p.linktype AS link_type,
    to_minor(r.p.foreignamount, coalesce(nxt.currency_exponent, prev.currency_exponent, 2))
        AS amount_minor,
    coalesce(nxt.currency, prev.currency) AS currency,
    r.is_deleted
FROM parsed AS r
LEFT JOIN {{ ref('stg_erp_transaction') }} AS nxt ON nxt.transaction_id = r.p.nextdoc
LEFT JOIN {{ ref('stg_erp_transaction') }} AS prev ON prev.transaction_id = r.p.previousdoc
