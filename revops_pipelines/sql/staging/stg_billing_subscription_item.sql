-- One row per subscription item; the recurring price normalized to a month.
with items as (
    select
        r.id as subscription_id,
        coalesce(r.deleted, false) as is_deleted,
        unnest(
            -- the whole payload in one parse: extracting `$.items.data` first would parse it twice
            from_json(
                r.payload,
                '{"items": {"data": [{"id": "VARCHAR", "quantity": "VARCHAR",
                                      "current_period_start": "BIGINT",
                                      "current_period_end": "BIGINT",
                                      "price": {"id": "VARCHAR", "product": "VARCHAR",
                                                "currency": "VARCHAR", "unit_amount": "VARCHAR",
                                                "recurring": {"interval": "VARCHAR",
                                                              "interval_count": "BIGINT"}}}]}}'
            ).items.data
        ) as item
    from {{ source('raw', 'billing_subscription') }} as r
),

typed as (
    select
        item.id as subscription_item_id,
        subscription_id,
        item.price.id as price_id,
        item.price.product as product_id,
        cast(item.quantity as double) as quantity,
        billing_minor(item.price.unit_amount, ce.exponent - ce.billing_exponent) as unit_amount_minor,
        item.price.recurring.interval as interval,
        coalesce(item.price.recurring.interval_count, 1) as interval_count,
        upper(item.price.currency) as currency,
        unix_to_utc(item.current_period_start) as current_period_start,
        unix_to_utc(item.current_period_end) as current_period_end,
        is_deleted
    from items
    left join seeds.currency_exponents as ce on ce.currency = upper(item.price.currency)
)

select
    t.*,
    p.sku,
    cast(
        t.unit_amount_minor * coalesce(t.quantity, 1)
        * case t.interval
            when 'month' then 1.0
            when 'year' then 1.0 / 12
            when 'week' then 52.0 / 12
            when 'day' then 365.0 / 12
        end
        / t.interval_count
        as decimal(24, 6)
    ) as monthly_amount_minor
from typed as t
left join {{ ref('stg_billing_product') }} as p on p.product_id = t.product_id
