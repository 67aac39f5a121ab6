-- Monthly recognized revenue: each billing invoice line's amount spread over its service
-- period by days. Every month but the last takes its share rounded toward zero; the last month
-- takes the remainder, so the months of a line always sum to the line amount exactly.
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
        lines.*,
        cast(
            unnest(
                generate_series(
                    date_trunc('month', start_day), date_trunc('month', end_day - 1), interval 1 month
                )
            ) as date
        ) as month
    from lines
),

shares as (
    select
        *,
        cast(
            (
                cast(amount_minor as hugeint)
                * (least(end_day, cast(month + interval 1 month as date)) - greatest(start_day, month))
            ) // (end_day - start_day)
            as bigint
        ) as share,
        row_number() over (partition by source_system, invoice_line_id order by month desc) = 1
            as is_last
    from months
)

select
    source_system,
    invoice_id,
    invoice_line_id,
    month,
    cast(
        case
            when is_last
                then amount_minor
                - (sum(share) over (partition by source_system, invoice_line_id) - share)
            else share
        end
        as bigint
    ) as amount_minor,
    currency
from shares
