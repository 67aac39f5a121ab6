-- Each payload is parsed once into a struct of texts (as `->>` would read each field).
WITH parsed AS (
    SELECT
        id,
        deleted,
        from_json(
            payload,
            '{"customer": "VARCHAR", "status": "VARCHAR", "currency": "VARCHAR",
              "created": "VARCHAR", "start_date": "VARCHAR", "canceled_at": "VARCHAR",
              "ended_at": "VARCHAR", "cancel_at_period_end": "VARCHAR",
              "metadata": {"crm_opportunity_id": "VARCHAR"}}'
        ) AS p
    FROM {{ source('raw', 'billing_subscription') }}
)

SELECT
    r.id AS subscription_id,
    r.p.customer AS customer_id,
    r.p.status,
    upper(r.p.currency) AS currency,
    unix_to_utc(r.p.created) AS created_at,
    unix_to_utc(r.p.start_date) AS start_date,
    unix_to_utc(r.p.canceled_at) AS canceled_at,
    unix_to_utc(r.p.ended_at) AS ended_at,
    coalesce(cast(r.p.cancel_at_period_end AS BOOLEAN), FALSE) AS cancel_at_period_end,
    blank_null(r.p.metadata.crm_opportunity_id) AS crm_opportunity_id,
    coalesce(r.deleted, FALSE) AS is_deleted
FROM parsed AS r
