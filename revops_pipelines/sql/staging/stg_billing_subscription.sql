-- Each payload is parsed once into a struct of texts (as `->>` would read each field).
with parsed as (
    select
        id,
        deleted,
        from_json(
            payload,
            '{"customer": "VARCHAR", "status": "VARCHAR", "currency": "VARCHAR",
              "created": "VARCHAR", "start_date": "VARCHAR", "canceled_at": "VARCHAR",
              "ended_at": "VARCHAR", "cancel_at_period_end": "VARCHAR",
              "metadata": {"crm_opportunity_id": "VARCHAR"}}'
        ) as p
    from {{ source('raw', 'billing_subscription') }}
)

select
    r.id as subscription_id,
    r.p.customer as customer_id,
    r.p.status,
    upper(r.p.currency) as currency,
    unix_to_utc(r.p.created) as created_at,
    unix_to_utc(r.p.start_date) as start_date,
    unix_to_utc(r.p.canceled_at) as canceled_at,
    unix_to_utc(r.p.ended_at) as ended_at,
    coalesce(cast(r.p.cancel_at_period_end as boolean), false) as cancel_at_period_end,
    blank_null(r.p.metadata.crm_opportunity_id) as crm_opportunity_id,
    coalesce(r.deleted, false) as is_deleted
from parsed as r
