-- Monthly recognized revenue: each billing invoice line's amount spread over its service
-- period by days. Every month but the last takes its share rounded toward zero; the last month
-- takes the remainder, so the months of a line always sum to the line amount exactly.
-- The shares are computed as one list per line, so the remainder needs no window over months.
WITH lines AS (
    SELECT
        l.source_system,
        l.invoice_id,
        l.source_id AS invoice_line_id,
        l.amount_minor,
        l.currency,
        cast(l.period_start AS DATE) AS start_day,
        -- the period end is exclusive; a zero-length period counts as its first day
        greatest(cast(l.period_end AS DATE), cast(l.period_start AS DATE) + 1) AS end_day
    FROM {{ ref('invoice_line') }} AS l
    INNER JOIN {{ ref('invoice') }} AS i
        ON i.source_system = l.source_system AND i.source_id = l.invoice_id
    WHERE l.source_system = 'billing'
        AND i.is_finalized
        AND i.status <> 'void'
        AND l.period_start IS NOT NULL
        AND l.amount_minor IS NOT NULL
),

months AS (
    SELECT
        *,
        list_transform(
            generate_series(
                date_trunc('month', start_day), date_trunc('month', end_day - 1), INTERVAL 1 MONTH
            ),
            LAMBDA m: cast(m AS DATE)
        ) AS months
    FROM lines
),

shares AS (
    SELECT
        *,
        -- every month's share but the last one's
        list_transform(
            months[1:-2],
            LAMBDA m: cast(
                (
                    cast(amount_minor AS HUGEINT)
                    * (least(end_day, cast(m + INTERVAL 1 MONTH AS DATE)) - greatest(start_day, m))
                ) // (end_day - start_day)
                AS BIGINT
            )
        ) AS earlier_shares
    FROM months
)

SELECT
    source_system,
    invoice_id,
    invoice_line_id,
    unnest(months) AS month,
    unnest(
        list_append(
            earlier_shares,
            cast(amount_minor - coalesce(list_sum(earlier_shares), 0) AS BIGINT)
        )
    ) AS amount_minor,
    currency
FROM shares
