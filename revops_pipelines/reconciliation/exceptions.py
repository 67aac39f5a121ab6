"""Exception history: the findings of each run merged into `reconciliation.exception_history`.

The reconciliation models are rebuilt every run; the history is not. It keeps when a
finding was first seen (aging), marks findings that disappeared as resolved, and keeps
a status a person set (planned, corrected, ignored) when the finding shows up again.
`reconciliation.drift_exceptions` is then rewritten from the history with the contract's columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from revops_pipelines.reconciliation.catalog import EXCEPTIONS_TABLE
from revops_pipelines.reconciliation.reading import read_exceptions
from revops_pipelines.reconciliation.run import FINDINGS_TABLE

HISTORY_TABLE = "reconciliation.exception_history"
STATUSES = ("open", "planned", "corrected", "resolved", "ignored")
PERSON_STATUSES = ("planned", "corrected", "ignored")

# docs: DRIFT.md `reconciliation.drift_exceptions`, in order, then resolved_at.
EXCEPTION_COLUMNS = (
    "exception_id",
    "drift_type",
    "entity",
    "crm_id",
    "billing_id",
    "erp_id",
    "field",
    "expected",
    "actual",
    "amount_impact_minor",
    "currency",
    "severity",
    "correlation_id",
    "first_detected_at",
    "last_detected_at",
    "status",
    "action",
    "suggested_action",
    "resolved_at",
)

_HISTORY_DDL = f"""
CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (
    exception_id VARCHAR PRIMARY KEY,
    drift_type VARCHAR NOT NULL,
    entity VARCHAR,
    crm_id VARCHAR,
    billing_id VARCHAR,
    erp_id VARCHAR,
    field VARCHAR,
    expected VARCHAR,
    actual VARCHAR,
    amount_impact_minor BIGINT,
    currency VARCHAR,
    severity VARCHAR,
    correlation_id VARCHAR,
    first_detected_at TIMESTAMPTZ NOT NULL,
    last_detected_at TIMESTAMPTZ NOT NULL,
    status VARCHAR NOT NULL,
    action VARCHAR,
    suggested_action VARCHAR,
    resolved_at TIMESTAMPTZ
)
"""


class ExceptionStatusError(ValueError):
    """A status change the exception history cannot take."""

    def __init__(self, exception_id: str, status: str, reason: str) -> None:
        super().__init__(f"exception {exception_id}: status {status!r}: {reason}")
        self.exception_id = exception_id
        self.status = status


@dataclass(frozen=True)
class ExceptionSummary:
    """What one merge changed, and what is open afterwards."""

    new: int
    still_open: int
    reopened: int
    resolved: int
    open_total: int
    review_total: int
    by_type: dict[str, int] = field(default_factory=dict)
    money_at_stake: dict[str, int] = field(default_factory=dict)


def ensure_history(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS reconciliation")
    con.execute(_HISTORY_DDL)


def update_exceptions(
    con: duckdb.DuckDBPyConnection,
    *,
    now: datetime | None = None,
    statuses: Mapping[str, str] | None = None,
) -> ExceptionSummary:
    """Merges `reconciliation.findings` into the history and rewrites
    `reconciliation.drift_exceptions`.

    `statuses` are the statuses people set (exception id → planned/corrected/ignored), e.g. from
    the ledger; they are applied before the merge so a reappearing finding keeps them.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    ensure_history(con)
    con.execute("BEGIN TRANSACTION")
    try:
        for exception_id, status in (statuses or {}).items():
            _set_status(con, exception_id, status)
        counts = _merge(con, now)
        _rewrite_exceptions(con)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return _summary(con, counts, now)


def _merge(con: duckdb.DuckDBPyConnection, now: datetime) -> dict[str, int]:
    (new, still, reopened, resolved) = con.execute(
        f"""
        SELECT
            count(*) FILTER (WHERE h.exception_id IS NULL),
            count(*) FILTER (WHERE h.exception_id IS NOT NULL AND h.status <> 'resolved'),
            count(*) FILTER (WHERE h.status = 'resolved'),
            (SELECT count(*) FROM {HISTORY_TABLE}
             WHERE status <> 'resolved'
               AND exception_id NOT IN (SELECT exception_id FROM {FINDINGS_TABLE}))
        FROM {FINDINGS_TABLE} AS f
        LEFT JOIN {HISTORY_TABLE} AS h USING (exception_id)
        """
    ).fetchall()[0]
    con.execute(
        f"""
        UPDATE {HISTORY_TABLE} SET status = 'resolved', resolved_at = ?
        WHERE status <> 'resolved'
          AND exception_id NOT IN (SELECT exception_id FROM {FINDINGS_TABLE})
        """,
        [now],
    )
    # A finding seen again takes this run's values; a person's status stays, a resolved one reopens.
    con.execute(
        f"""
        INSERT INTO {HISTORY_TABLE}
        SELECT
            f.exception_id, f.drift_type, f.entity, f.crm_id, f.billing_id, f.erp_id, f.field,
            f.expected, f.actual, f.amount_impact_minor, f.currency, f.severity, f.correlation_id,
            ? AS first_detected_at, ? AS last_detected_at, 'open' AS status,
            f.action, f.suggested_action, NULL AS resolved_at
        FROM {FINDINGS_TABLE} AS f
        ON CONFLICT (exception_id) DO UPDATE SET
            drift_type = excluded.drift_type, entity = excluded.entity,
            crm_id = excluded.crm_id, billing_id = excluded.billing_id, erp_id = excluded.erp_id,
            field = excluded.field, expected = excluded.expected, actual = excluded.actual,
            amount_impact_minor = excluded.amount_impact_minor, currency = excluded.currency,
            severity = excluded.severity, correlation_id = excluded.correlation_id,
            last_detected_at = excluded.last_detected_at,
            status = CASE WHEN status = 'resolved' THEN 'open' ELSE status END,
            action = excluded.action, suggested_action = excluded.suggested_action,
            resolved_at = NULL
        """,
        [now, now],
    )
    return {"new": new, "still_open": still, "reopened": reopened, "resolved": resolved}


def _rewrite_exceptions(con: duckdb.DuckDBPyConnection) -> None:
    columns = ", ".join(EXCEPTION_COLUMNS)
    con.execute(
        f"CREATE OR REPLACE TABLE {EXCEPTIONS_TABLE} AS SELECT {columns} FROM {HISTORY_TABLE} "
        "ORDER BY status = 'resolved', severity = 'critical' DESC, severity = 'high' DESC, "
        "amount_impact_minor DESC NULLS LAST, exception_id"
    )


def _set_status(con: duckdb.DuckDBPyConnection, exception_id: str, status: str) -> None:
    if status not in PERSON_STATUSES and status != "open":
        raise ExceptionStatusError(
            exception_id, status, f"a person may set only {', '.join(PERSON_STATUSES)} or open"
        )
    found = con.execute(
        f"UPDATE {HISTORY_TABLE} SET status = ? WHERE exception_id = ? RETURNING exception_id",
        [status, exception_id],
    ).fetchall()
    if not found:
        raise ExceptionStatusError(exception_id, status, "no such exception in the history")


def set_status(con: duckdb.DuckDBPyConnection, exception_id: str, status: str) -> None:
    """A person's decision on one exception (planned, corrected, ignored, or open again)."""
    ensure_history(con)
    _set_status(con, exception_id, status)
    _rewrite_exceptions(con)


def _summary(
    con: duckdb.DuckDBPyConnection, counts: Mapping[str, int], now: datetime
) -> ExceptionSummary:
    reading = read_exceptions(con, as_of=now)
    return ExceptionSummary(
        new=int(counts["new"]),
        still_open=int(counts["still_open"]),
        reopened=int(counts["reopened"]),
        resolved=int(counts["resolved"]),
        open_total=reading.open_total,
        review_total=reading.review,
        by_type=reading.by_type,
        money_at_stake=reading.money_at_stake,
    )


def export_exceptions(con: duckdb.DuckDBPyConnection, out_dir: Path) -> tuple[Path, Path]:
    """`drift_exceptions.parquet` and `.csv` in `out_dir`, with the contract's columns."""
    out_dir.mkdir(parents=True, exist_ok=True)
    parquet, csv = out_dir / "drift_exceptions.parquet", out_dir / "drift_exceptions.csv"
    query = f"SELECT {', '.join(EXCEPTION_COLUMNS)} FROM {EXCEPTIONS_TABLE}"
    # Written beside the target and renamed, so a reader never sees half a file.
    for path, options in ((parquet, "FORMAT parquet"), (csv, "FORMAT csv, HEADER true")):
        partial = path.with_name(path.name + ".partial")
        con.execute(f"COPY ({query}) TO '{_quote_path(partial)}' ({options})")
        partial.replace(path)
    return parquet, csv


def _quote_path(path: Path) -> str:
    return str(path).replace("'", "''")
