"""The one reading of `reconciliation.drift_exceptions`: which rows are open, how old, how much
is at stake.

The report, the metrics, the demo summary, trace and the Dagster metadata all read the
exceptions through here, so two screens never disagree about the same exception:
- open means status open or planned (a planned correction has not happened yet);
- age is whole days from first detection to the as-of moment (to resolution once resolved);
- money at stake is the amount of a row that has both an amount and a currency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from revops_pipelines.reconciliation.catalog import EXCEPTIONS_TABLE, SEVERITIES
from revops_pipelines.reconciliation.money import Rates

OPEN_STATUSES = ("open", "planned")
OPEN_SQL = "status IN ('open', 'planned')"
AGE_BUCKETS = ("0-1", "2-7", "8-30", ">30")
_AGE_UPPER = (1, 7, 30)


def age_bucket(days: int) -> str:
    for label, upper in zip(AGE_BUCKETS, _AGE_UPPER, strict=False):
        if days <= upper:
            return label
    return AGE_BUCKETS[-1]


def severity_rank(severity: str | None) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def exception_rows(
    con: duckdb.DuckDBPyConnection,
    *,
    as_of: datetime,
    rates: Rates | None = None,
    open_only: bool = True,
    where: str = "",
    params: list | None = None,
) -> list[dict[str, Any]]:
    """Exception rows with `age_days`, `age_bucket`, `is_open`, `at_stake_minor` (native) and
    `reporting_minor` (in the reporting currency, None without a rate), most urgent first:
    severity rank, then money in the reporting currency, then native money."""
    filters = [f for f in (OPEN_SQL if open_only else "", where) if f]
    cursor = con.execute(
        f"""
        SELECT *, {OPEN_SQL} AS is_open,
            greatest(0, floor(epoch(coalesce(resolved_at, ?::TIMESTAMPTZ) - first_detected_at)
                              / 86400))::INTEGER AS age_days
        FROM {EXCEPTIONS_TABLE}
        {"WHERE " + " AND ".join(filters) if filters else ""}
        """,
        [as_of, *(params or [])],
    )
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    for r in rows:
        r["age_bucket"] = age_bucket(r["age_days"])
        money = r["amount_impact_minor"] is not None and bool(r["currency"])
        r["at_stake_minor"] = int(r["amount_impact_minor"]) if money else None
        r["reporting_minor"] = (
            rates.convert(r["at_stake_minor"], r["currency"]) if rates and money else None
        )
    rows.sort(
        key=lambda r: (
            severity_rank(r["severity"]),
            -(r["reporting_minor"] if r["reporting_minor"] is not None else -1),
            -(r["at_stake_minor"] if r["at_stake_minor"] is not None else -1),
            r["exception_id"],
        )
    )
    return rows


@dataclass(frozen=True)
class ExceptionReading:
    """The open exceptions at one as-of moment, counted every way a screen shows them."""

    as_of: datetime
    rows: list[dict[str, Any]]
    by_severity: dict[str, int]
    by_type: dict[str, int]
    by_type_severity: dict[str, dict[str, int]]
    aging: dict[str, int]
    review: int
    money_at_stake: dict[str, int]  # native minor units per currency
    reporting_currency: str | None = None
    at_stake_reporting_minor: int | None = None  # rows with a rate only
    unconverted: dict[str, int] = field(default_factory=dict)  # currencies with no rate

    @property
    def open_total(self) -> int:
        return len(self.rows)


def read_exceptions(
    con: duckdb.DuckDBPyConnection, *, as_of: datetime, rates: Rates | None = None
) -> ExceptionReading:
    rows = exception_rows(con, as_of=as_of, rates=rates)
    by_severity = {s: 0 for s in SEVERITIES}
    by_type: dict[str, int] = {}
    by_type_severity: dict[str, dict[str, int]] = {}
    aging = dict.fromkeys(AGE_BUCKETS, 0)
    money: dict[str, int] = {}
    unconverted: dict[str, int] = {}
    reporting_total = 0
    for r in rows:
        by_severity[r["severity"]] = by_severity.get(r["severity"], 0) + 1
        by_type[r["drift_type"]] = by_type.get(r["drift_type"], 0) + 1
        per = by_type_severity.setdefault(r["drift_type"], {})
        per[r["severity"]] = per.get(r["severity"], 0) + 1
        aging[r["age_bucket"]] += 1
        if r["at_stake_minor"] is not None:
            money[r["currency"]] = money.get(r["currency"], 0) + r["at_stake_minor"]
            if r["reporting_minor"] is None:
                unconverted[r["currency"]] = unconverted.get(r["currency"], 0) + r["at_stake_minor"]
            else:
                reporting_total += r["reporting_minor"]
    return ExceptionReading(
        as_of=as_of,
        rows=rows,
        by_severity={s: n for s, n in by_severity.items() if n},
        by_type=dict(sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0]))),
        by_type_severity=by_type_severity,
        aging=aging,
        review=sum(1 for r in rows if r["action"] == "review"),
        money_at_stake=dict(sorted(money.items())),
        reporting_currency=rates.reporting if rates else None,
        at_stake_reporting_minor=reporting_total if rates else None,
        unconverted=dict(sorted(unconverted.items())),
    )
