-- ERP invoices, payments and credit memos (one id space); money in the row's currency.
-- Each payload is parsed once into a struct; numbers are read as text for exact decimals.
-- The stream a row came from gives its type when the row itself does not carry one.
WITH rows AS (
    SELECT id, payload, deleted, 'CustInvc' AS stream_type
    FROM {{ source('raw', 'erp_invoice') }}
    UNION ALL
    SELECT id, payload, deleted, 'CustPymt' FROM {{ source('raw', 'erp_customer_payment') }}
    UNION ALL
    SELECT id, payload, deleted, 'CustCred' FROM {{ source('raw', 'erp_credit_memo') }}
),

parsed AS (
    SELECT
        id,
        coalesce(deleted, FALSE) AS is_deleted,
        stream_type,
        from_json(
            payload,
            '{"type": "VARCHAR", "tranid": "VARCHAR", "trandate": "VARCHAR", "entity": "VARCHAR",
              "subsidiary": "VARCHAR", "currency": "VARCHAR", "externalid": "VARCHAR",
              "foreigntotal": "VARCHAR", "foreigntaxtotal": "VARCHAR",
              "foreignamountremaining": "VARCHAR", "status": "VARCHAR",
              "custbody_billing_subscription_id": "VARCHAR", "datecreated": "VARCHAR",
              "lastmodifieddate": "VARCHAR"}'
        ) AS p
    FROM rows
)

SELECT
    r.id AS transaction_id,
    coalesce(r.p.type, r.stream_type) AS transaction_type,
    r.p.tranid,
    cast(r.p.trandate AS DATE) AS trandate,
    blank_null(r.p.entity) AS entity_id,
    blank_null(r.p.subsidiary) AS subsidiary_id,
    c.currency,
    coalesce(ce.exponent, 2) AS currency_exponent,
    blank_null(r.p.externalid) AS externalid,
    to_minor(r.p.foreigntotal, coalesce(ce.exponent, 2)) AS total_minor,
    to_minor(r.p.foreigntaxtotal, coalesce(ce.exponent, 2)) AS tax_minor,
    to_minor(r.p.foreignamountremaining, coalesce(ce.exponent, 2)) AS amount_remaining_minor,
    blank_null(r.p.status) AS status,
    blank_null(r.p.custbody_billing_subscription_id) AS billing_subscription_id,
    cast(r.p.datecreated AS TIMESTAMPTZ) AS created_at,
    cast(r.p.lastmodifieddate AS TIMESTAMPTZ) AS updated_at,
    r.is_deleted
FROM parsed AS r
LEFT JOIN {{ ref('stg_erp_currency') }} AS c ON c.currency_id = r.p.currency
LEFT JOIN seeds.currency_exponents AS ce ON ce.currency = c.currency
