"""Money for people: each currency in its own decimals, totals in one reporting currency.

Rates come from the ERP's `currencyrate` records (`staging.stg_erp_currency_rate`) or from a
rates file with the same columns (`base_currency,currency,rate,effective_date`): one unit of
`currency` is worth `rate` units of `base_currency` from `effective_date` on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from revops_pipelines.reconciliation.catalog import relation_exists

DEFAULT_EXPONENT = 2
RATES_MODEL = ("staging", "stg_erp_currency_rate")


def currency_exponents(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Decimals per currency from the `currency_exponents` seed (2 where it is not loaded)."""
    if not relation_exists(con, "seeds", "currency_exponents"):
        return {}
    rows = con.execute("SELECT upper(currency), exponent FROM seeds.currency_exponents").fetchall()
    return {str(c): int(e) for c, e in rows}


@dataclass(frozen=True)
class Rates:
    """Conversion of minor amounts into the reporting currency, and how to write money."""

    reporting: str
    to_reporting: dict[str, float] = field(default_factory=dict)  # major unit → reporting major
    exponents: dict[str, int] = field(default_factory=dict)
    first_date: date | None = None  # oldest and newest effective date of the rates used
    last_date: date | None = None
    source: str = "no rates"

    def exponent(self, currency: str | None) -> int:
        return self.exponents.get((currency or "").upper(), DEFAULT_EXPONENT)

    def convert(self, minor: int | None, currency: str | None) -> int | None:
        """`minor` of `currency` in minor units of the reporting currency; None without a rate."""
        if minor is None or not currency:
            return None
        rate = self.to_reporting.get(currency.upper())
        if rate is None:
            return None
        major = minor / 10 ** self.exponent(currency) * rate
        return round(major * 10 ** self.exponent(self.reporting))

    def number(self, minor: int | None, currency: str | None) -> str:
        """Major units with the currency's own decimals and thousands separators."""
        if minor is None:
            return ""
        exponent = self.exponent(currency)
        return f"{minor / 10**exponent:,.{exponent}f}"

    def text(self, minor: int | None, currency: str | None) -> str:
        """`8,492.25 USD`, `53,165 JPY`, `1.000 KWD`; empty without an amount."""
        if minor is None:
            return ""
        return f"{self.number(minor, currency)} {(currency or '').upper()}".strip()

    def as_of_text(self) -> str:
        if self.first_date is None:
            return "no exchange rates"
        if self.first_date == self.last_date:
            return f"rates of {self.first_date.isoformat()}"
        return f"rates of {self.first_date.isoformat()} to {self.last_date.isoformat()}"


def _rate_rows(con: duckdb.DuckDBPyConnection, rates_file: Path | None) -> tuple[list[tuple], str]:
    columns = (
        "upper(base_currency), upper(currency), CAST(rate AS DOUBLE), CAST(effective_date AS DATE)"
    )
    if rates_file is not None:
        rows = con.execute(
            f"SELECT {columns} FROM read_csv(?, header = true, all_varchar = true)",
            [str(rates_file)],
        ).fetchall()
        return rows, str(rates_file)
    if relation_exists(con, *RATES_MODEL):
        rows = con.execute(f"SELECT {columns} FROM {'.'.join(RATES_MODEL)}").fetchall()
        return rows, "ERP currency rates"
    return [], "no rates"


def load_rates(
    con: duckdb.DuckDBPyConnection,
    reporting: str,
    *,
    on: date,
    rates_file: Path | None = None,
) -> Rates:
    """The latest rate on or before `on` for every currency that reaches `reporting`.

    A currency converts directly (rate to the reporting currency), through a common base
    (both have a rate to it), or by the inverse of the reporting currency's rate to it.
    """
    reporting = reporting.upper()
    rows, source = _rate_rows(con, rates_file)
    latest: dict[tuple[str, str], tuple[date, float]] = {}
    for base, currency, rate, effective in rows:
        if not rate or effective is None or effective > on:
            continue
        key = (base, currency)
        if key not in latest or effective > latest[key][0]:
            latest[key] = (effective, float(rate))

    def to_base(currency: str, base: str) -> tuple[float, list[date]] | None:
        if currency == base:
            return 1.0, []
        if (base, currency) in latest:
            effective, rate = latest[(base, currency)]
            return rate, [effective]
        if (currency, base) in latest:
            effective, rate = latest[(currency, base)]
            return 1 / rate, [effective]
        return None

    currencies = {c for pair in latest for c in pair} | {reporting}
    bases = {base for base, _ in latest} | {reporting}
    to_reporting: dict[str, float] = {}
    used: list[date] = []
    for currency in sorted(currencies):
        for base in sorted(bases, key=lambda b: b != reporting):
            there, back = to_base(currency, base), to_base(reporting, base)
            if there is not None and back is not None:
                to_reporting[currency] = there[0] / back[0]
                used += there[1] + back[1]
                break
    return Rates(
        reporting=reporting,
        to_reporting=to_reporting,
        exponents=currency_exponents(con),
        first_date=min(used, default=None),
        last_date=max(used, default=None),
        source=source,
    )
