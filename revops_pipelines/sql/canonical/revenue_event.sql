-- Monthly recognized revenue: each billing invoice line's amount spread over its service
-- period by days. Every month but the last takes its share rounded toward zero; the last month
-- takes the remainder, so the months of a line always sum to the line amount exactly.
-- The shares are computed as one list per line, so the remainder needs no window over months.
with lines as (
    select
        l.source_system,
        l.invoice_id,
        l.source_id as invoice_line_id,
        l.amount_minor,
        l.currency,
        cast(l.period_start as date) as start_day,
        -- the period end is exclusive; a zero-length period counts as its first day
        greatest(cast(l.period_end as date), cast(l.period_start as date) + 1) as end_day
    from {{ ref('invoice_line') }} as l
    inner join {{ ref('invoice') }} as i
        on i.source_system = l.source_system and i.source_id = l.invoice_id
    where l.source_system = 'billing'
        and i.is_finalized
        and i.status <> 'void'
        and l.period_start is not null
        and l.amount_minor is not null
),

months as (
    select
        *,
        list_transform(
            generate_series(
                date_trunc('month', start_day), date_trunc('month', end_day - 1), interval 1 month
            ),
            lambda m: cast(m as date)
        ) as months
    from lines
),

shares as (
    select
        *,
        -- every month's share but the last one's
        list_transform(
            months[1:-2],
            lambda m: cast(
                (
                    cast(amount_minor as hugeint)
                    * (least(end_day, cast(m + interval 1 month as date)) - greatest(start_day, m))
                ) // (end_day - start_day)
                as bigint
            )
        ) as earlier_shares
    from months
)

select
    source_system,
    invoice_id,
    invoice_line_id,
    unnest(months) as month,
    unnest(
        list_append(
            earlier_shares,
            cast(amount_minor - coalesce(list_sum(earlier_shares), 0) as bigint)
        )
    ) as amount_minor,
    currency
from shares
