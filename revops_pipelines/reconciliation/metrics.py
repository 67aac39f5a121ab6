"""Business metrics of a reconciliation run, appended to `reconciliation.metrics_history`
for trends.

Quote-to-cash delay comes from `canonical.lifecycle_event`; the exception metrics from the
one reading of `reconciliation.drift_exceptions` after the merge; invoice accuracy from this
run's findings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from revops_pipelines.reconciliation.catalog import drift_codes, relation_exists
from revops_pipelines.reconciliation.money import Rates
from revops_pipelines.reconciliation.reading import read_exceptions
from revops_pipelines.reconciliation.run import FINDINGS_TABLE

METRICS_TABLE = "reconciliation.metrics_history"
DELAY_BUCKETS = ("0-7", "8-14", "15-30", "31-60", "61-90", ">90")
# Findings that make a billing invoice wrong besides its own invoice codes.
PAYMENT_CODES = ("payment_missing_in_erp", "payment_amount_mismatch")
CUSTOMER_CODES = ("customer_missing_in_erp", "customer_missing_tax_or_entity")


@dataclass(frozen=True)
class Metric:
    metric: str
    dimension: str
    value: float


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def quote_to_cash_days(con: duckdb.DuckDBPyConnection) -> list[float]:
    """Days from opportunity_won to the first payment_applied, one value per lifecycle."""
    if not relation_exists(con, "canonical", "lifecycle_event"):
        return []
    rows = _rows(
        con,
        """
        SELECT epoch(min(occurred_at) FILTER (WHERE stage = 'payment_applied')
                     - min(occurred_at) FILTER (WHERE stage = 'opportunity_won')) / 86400.0
        FROM canonical.lifecycle_event
        GROUP BY correlation_id
        HAVING count(*) FILTER (WHERE stage = 'opportunity_won') > 0
           AND count(*) FILTER (WHERE stage = 'payment_applied') > 0
        """,
    )
    return sorted(max(0.0, float(r[0])) for r in rows if r[0] is not None)


def _delay_bucket(days: float) -> str:
    for label, upper in zip(DELAY_BUCKETS, (7, 14, 30, 60, 90), strict=False):
        if days <= upper:
            return label
    return DELAY_BUCKETS[-1]


def compute_metrics(
    con: duckdb.DuckDBPyConnection, *, now: datetime, rates: Rates | None = None
) -> list[Metric]:
    """The metrics of DRIFT.md for the state after this run's merge, as of `now`."""
    metrics: list[Metric] = []

    delays = quote_to_cash_days(con)
    if delays:
        metrics += [
            Metric("quote_to_cash_days", "count", float(len(delays))),
            Metric("quote_to_cash_days", "p50", _percentile(delays, 0.5)),
            Metric("quote_to_cash_days", "p90", _percentile(delays, 0.9)),
            Metric("quote_to_cash_days", "mean", sum(delays) / len(delays)),
        ]
        counts = dict.fromkeys(DELAY_BUCKETS, 0)
        for days in delays:
            counts[_delay_bucket(days)] += 1
        metrics += [Metric("quote_to_cash_histogram", k, float(v)) for k, v in counts.items()]

    reading = read_exceptions(con, as_of=now, rates=rates)
    metrics += [Metric("open_exceptions_by_age", k, float(v)) for k, v in reading.aging.items()]
    metrics += [
        Metric("open_exceptions_by_severity", k, float(v)) for k, v in reading.by_severity.items()
    ]
    # Every code of the catalog, so a code's trend shows its zeros too.
    metrics += [
        Metric("open_exceptions_by_type", code, float(reading.by_type.get(code, 0)))
        for code in sorted(set(drift_codes()) | set(reading.by_type))
    ]
    metrics.append(Metric("manual_reconciliation_items", "review", float(reading.review)))
    metrics += [
        Metric("money_at_stake_minor", k, float(v)) for k, v in reading.money_at_stake.items()
    ]
    if reading.reporting_currency is not None:
        metrics.append(
            Metric(
                "money_at_stake_reporting_minor",
                reading.reporting_currency,
                float(reading.at_stake_reporting_minor or 0),
            )
        )

    accuracy = invoice_accuracy(con)
    if accuracy is not None:
        metrics.append(Metric("invoice_accuracy", "share", accuracy))
    return metrics


def invoice_accuracy(con: duckdb.DuckDBPyConnection) -> float | None:
    """Share of finalized billing invoices with no invoice or payment finding in this run."""
    needed = (("reconciliation", "findings"), ("canonical", "invoice"), ("canonical", "payment"))
    if not all(relation_exists(con, *name) for name in needed):
        return None
    invoice = [c.drift_type for c in drift_codes().values() if c.entity == "invoice"]
    codes, payment, customer = (
        ", ".join(f"'{c}'" for c in group) for group in (invoice, PAYMENT_CODES, CUSTOMER_CODES)
    )
    [(total, wrong)] = _rows(
        con,
        f"""
        WITH fin AS (
            SELECT source_id, customer_id FROM canonical.invoice
            WHERE source_system = 'billing' AND finalized_at IS NOT NULL
              AND coalesce(status, '') <> 'draft'
        ),
        bad AS (
            SELECT billing_id AS invoice_id FROM {FINDINGS_TABLE} WHERE drift_type IN ({codes})
            UNION
            SELECT p.invoice_id FROM {FINDINGS_TABLE} AS f
            JOIN canonical.payment AS p
              ON p.source_system = 'billing' AND p.source_id = f.billing_id
            WHERE f.drift_type IN ({payment})
            UNION
            SELECT fin.source_id FROM fin
            JOIN {FINDINGS_TABLE} AS f ON f.billing_id = fin.customer_id
            WHERE f.drift_type IN ({customer})
        )
        SELECT count(*), count(*) FILTER (WHERE source_id IN (SELECT invoice_id FROM bad))
        FROM fin
        """,
    )
    if not total:
        return None
    return (total - wrong) / total


def _percentile(values: list[float], share: float) -> float:
    index = min(len(values) - 1, max(0, round(share * (len(values) - 1))))
    return values[index]


def record_metrics(
    con: duckdb.DuckDBPyConnection, *, now: datetime | None = None, rates: Rates | None = None
) -> list[Metric]:
    """Computes this run's metrics as of `now` and appends them to
    `reconciliation.metrics_history`."""
    run_at = (now or datetime.now(UTC)).astimezone(UTC)
    metrics = compute_metrics(con, now=run_at, rates=rates)
    con.execute("CREATE SCHEMA IF NOT EXISTS reconciliation")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {METRICS_TABLE} "
        "(run_at TIMESTAMPTZ, metric VARCHAR, dimension VARCHAR, value DOUBLE)"
    )
    # A rerun at the same moment replaces its own rows rather than doubling them.
    con.execute(f"DELETE FROM {METRICS_TABLE} WHERE run_at = ?", [run_at])
    con.executemany(
        f"INSERT INTO {METRICS_TABLE} VALUES (?, ?, ?, ?)",
        [[run_at, m.metric, m.dimension, m.value] for m in metrics],
    )
    return metrics
