"""The generator's world core: the clock, legal entities, products, ids and the `World` that
holds every record until it is written.

Every record is a plain dict shaped as SOURCES.md says, kept in `World.files` by state-file
name and record id, so drift injection can change or remove records before anything is
written. Money is computed in integer minor units and only turned into each API's notation
(CRM and ERP major units, Stripe minor units) when a record is built. Each system's records
are built in `generate_crm`, `generate_billing` and `generate_erp`; `generate_world` runs them
in a customer's order.
"""

from __future__ import annotations

import random
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

AS_OF = date(2026, 10, 31)
NOW = int(datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC).timestamp())
DAY = 86_400

B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SF_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


@dataclass(frozen=True)
class Entity:
    code: str
    country: str
    currency: str
    exponent: int
    subsidiary_id: str
    subsidiary_name: str
    jurisdictions: tuple[str, ...]
    weight: int


ENTITIES: tuple[Entity, ...] = (
    Entity("US01", "US", "USD", 2, "1", "RevOps US Inc.", ("US-CA", "US-NY"), 45),
    Entity("GB01", "GB", "GBP", 2, "2", "RevOps UK Ltd", ("GB",), 15),
    Entity("DE01", "DE", "EUR", 2, "3", "RevOps Deutschland GmbH", ("DE",), 20),
    Entity("JP01", "JP", "JPY", 0, "4", "RevOps Japan K.K.", ("JP",), 12),
    Entity("KW01", "KW", "KWD", 3, "5", "RevOps Kuwait W.L.L.", ("KW",), 8),
)
CURRENCY_IDS = {e.currency: str(i) for i, e in enumerate(ENTITIES, start=1)}
EXPONENTS = {e.currency: e.exponent for e in ENTITIES}

# Tax rates in thousandths of a percent, so tax stays integer arithmetic.
TAX_RATE_MILLI = {"US-CA": 7250, "US-NY": 8875, "GB": 20000, "DE": 19000, "JP": 10000, "KW": 0}

# Price in a currency's minor units per US cent (JPY has no minor unit, KWD has three decimals).
PRICE_FACTOR = {"USD": 1.0, "GBP": 0.8, "EUR": 0.92, "JPY": 1.5, "KWD": 3.07}


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    family: str
    usd_monthly: int
    usd_yearly_per_month: int


PRODUCTS: tuple[Product, ...] = (
    Product("PLAT-CORE", "Core Platform", "Platform", 49_900, 44_900),
    Product("SEAT-PRO", "Pro Seat", "Seats", 4_900, 4_400),
    Product("ADD-ANALYTICS", "Analytics Add-on", "Add-on", 19_900, 17_900),
    Product("SUP-PREMIUM", "Premium Support", "Support", 29_900, 26_900),
    Product("PLAT-COMMUNITY", "Community Edition", "Platform", 0, 0),
)


def norm_name(text: str) -> str:
    """Matching form of a name: NFKC, case folded, whitespace trimmed and collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def day(ts: int) -> str:
    t = time.gmtime(ts)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"


def sf_datetime(ts: int) -> str:
    t = time.gmtime(ts)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.000+0000"
    )


def iso_z(ts: int) -> str:
    t = time.gmtime(ts)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}Z"
    )


def midnight(d: date) -> int:
    return (d - date(1970, 1, 1)).days * DAY


def add_months(ts: int, months: int) -> int:
    """Same day of month (clipped to the month's end) and time, `months` later."""
    d = date(1970, 1, 1) + timedelta(days=ts // DAY)
    total = d.year * 12 + d.month - 1 + months
    year, month = divmod(total, 12)
    month += 1
    next_first = date(year + month // 12, month % 12 + 1, 1)
    last_day = (next_first - timedelta(days=1)).day
    return midnight(date(year, month, min(d.day, last_day))) + ts % DAY


def major(minor: int, currency: str) -> float | int:
    """Major units as a JSON number that round-trips exactly (JPY stays an integer)."""
    exponent = EXPONENTS[currency]
    return minor if exponent == 0 else minor / 10**exponent


def tax_for(subtotal: int, jurisdiction: str, *, exempt: bool) -> int:
    rate = 0 if exempt else TAX_RATE_MILLI[jurisdiction]
    return (subtotal * rate + 50_000) // 100_000


class Ids:
    """Id factory: Salesforce 18-character ids, Stripe-style ids, NetSuite numeric ids."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._pod = rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") + rng.choice("abcdefghijkmnopqrstuvwxyz")
        self._counters: dict[str, int] = {}

    def _next(self, key: str, start: int = 1) -> int:
        n = self._counters.get(key, start)
        self._counters[key] = n + 1
        return n

    def salesforce(self, prefix: str) -> str:
        n = self._next(prefix)
        digits = []
        for _ in range(10):
            n, r = divmod(n, 62)
            digits.append(B62[r])
        body = prefix + self._pod + "".join(reversed(digits))
        suffix = ""
        for i in range(3):
            chunk = body[i * 5 : i * 5 + 5]
            bits = sum(1 << j for j, c in enumerate(chunk) if "A" <= c <= "Z")
            suffix += _SF_CHECKSUM[bits]
        return body + suffix

    def stripe(self, prefix: str) -> str:
        # 9 random base-62 characters, then a 5-character counter: unique by construction.
        n = self._rng.getrandbits(53) * 62**5 + self._next(prefix) % 62**5
        chars = []
        for _ in range(14):
            n, r = divmod(n, 62)
            chars.append(B62[r])
        return f"{prefix}_{''.join(reversed(chars))}"

    def erp(self, kind: str) -> str:
        # Transactions (invoice, customerpayment, creditmemo) share one id space.
        start = {"customer": 1000, "item": 100, "transaction": 5000}[kind]
        return str(self._next(kind, start))


@dataclass
class Bill:
    """One billing invoice and the records that follow it in billing and the ERP."""

    invoice: dict
    payment: dict | None = None
    credit_note: dict | None = None
    erp_invoice: dict | None = None
    erp_payment: dict | None = None
    erp_credit_memo: dict | None = None


@dataclass
class Deal:
    """A won opportunity with its contract and, once provisioned, its subscription."""

    opportunity: dict
    lines: list[dict]
    contract: dict
    subscription: dict | None = None
    bills: list[Bill] = field(default_factory=list)


@dataclass
class Customer:
    index: int
    account: dict
    entity: Entity
    jurisdiction: str
    exempt: bool
    email: str
    deals: list[Deal] = field(default_factory=list)
    billing: dict | None = None
    erp: dict | None = None
    extra_bills: list[Bill] = field(default_factory=list)
    invoice_prefix: str = ""
    invoice_seq: int = 0

    @property
    def currency(self) -> str:
        return self.entity.currency

    def all_bills(self) -> list[Bill]:
        return [b for d in self.deals for b in d.bills] + self.extra_bills


FILE_NAMES: tuple[str, ...] = (
    "crm/Account",
    "crm/Opportunity",
    "crm/OpportunityLineItem",
    "crm/Product2",
    "crm/Contract",
    "billing/customers",
    "billing/products",
    "billing/prices",
    "billing/subscriptions",
    "billing/invoices",
    "billing/invoice_payments",
    "billing/credit_notes",
    "billing/events",
    "erp/subsidiary",
    "erp/customer",
    "erp/item",
    "erp/invoice",
    "erp/customerpayment",
    "erp/creditmemo",
    "erp/currencyrate",
)


@dataclass
class World:
    rng: random.Random
    ids: Ids
    months: int
    window_start: int
    files: dict[str, dict[str, dict]] = field(
        default_factory=lambda: {name: {} for name in FILE_NAMES}
    )
    customers: list[Customer] = field(default_factory=list)
    product2: dict[str, dict] = field(default_factory=dict)
    billing_product: dict[str, dict] = field(default_factory=dict)
    erp_items: dict[str, dict] = field(default_factory=dict)
    prices: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    names_taken: set[tuple[str, str]] = field(default_factory=set)
    # Customers a drift injection changed (their index): the nulls pass leaves them alone.
    drifted: set[int] = field(default_factory=set)

    def add(self, file: str, record: dict) -> dict:
        key = record["Id"] if file.startswith("crm/") else record["id"]
        self.files[file][key] = record
        return record

    def remove(self, file: str, record: dict | None) -> None:
        if record is not None:
            key = record["Id"] if file.startswith("crm/") else record["id"]
            self.files[file].pop(key, None)


def monthly_price(world: World, sku: str, currency: str, interval: str) -> int:
    """Monthly-normalized unit price in minor units; yearly prices divide by 12 exactly."""
    unit = world.prices[(sku, currency, interval)]["unit_amount"]
    return unit // 12 if interval == "year" else unit
