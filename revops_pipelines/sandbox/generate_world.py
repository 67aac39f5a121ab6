"""A realistic, drift-free world of CRM, billing and ERP records for the sandbox.

Every record is a plain dict shaped as SOURCES.md says, kept in `World.files` by
state-file name and record id, so drift injection can change or remove records
before anything is written. Money is computed in integer minor units and only
turned into each API's notation (CRM and ERP major units, Stripe minor units)
when a record is built.
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
SF_API = "/services/data/v59.0/sobjects"
ERP_API = "/services/rest/record/v1"

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
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
_PRICE_FACTOR = {"USD": 1.0, "GBP": 0.8, "EUR": 0.92, "JPY": 1.5, "KWD": 3.07}

ADDRESSES: dict[str, tuple[tuple[str, str, str | None, str], ...]] = {
    "US-CA": (
        ("1 Market St", "San Francisco", "CA", "94105"),
        ("500 Main St", "Irvine", "CA", "92614"),
    ),
    "US-NY": (
        ("350 Fifth Ave", "New York", "NY", "10118"),
        ("12 Court St", "Brooklyn", "NY", "11201"),
    ),
    "GB": (
        ("10 Downing Lane", "London", None, "SW1A 2AA"),
        ("4 Deansgate", "Manchester", None, "M3 2BW"),
    ),
    "DE": (
        ("Friedrichstraße 68", "Berlin", None, "10117"),
        ("Marienplatz 8", "München", None, "80331"),
    ),
    "JP": (
        ("丸の内1-1-1", "東京都千代田区", None, "100-0005"),
        ("梅田3-1-3", "大阪市北区", None, "530-0001"),
    ),
    "KW": (
        ("Gulf Road, Block 7", "Kuwait City", None, "13001"),
        ("Salem Al Mubarak St", "Salmiya", None, "22001"),
    ),
}

_NAME_PARTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "US": (
        (
            "Acme",
            "Globex",
            "Initech",
            "Umbrella",
            "Hooli",
            "Vandelay",
            "Northwind",
            "Contoso",
            "Fabrikam",
            "Blue Sky",
            "Cyberdyne",
            "Aperture",
            "Soylent",
            "Tyrell",
            "Wonka",
        ),
        ("Systems", "Labs", "Analytics", "Logistics", "Foods", "Robotics", "Media", "Health"),
        ("Inc.", "LLC", "Corp"),
    ),
    "GB": (
        ("Whitmore", "Ashford", "Pemberton", "Kingsley", "Thistle", "Harrow", "Société Lumière"),
        ("Trading", "Holdings", "Partners", "Engineering", "Consulting"),
        ("Ltd", "plc"),
    ),
    "DE": (
        ("Müller", "Schäfer", "Weiß", "Groß", "Köhler", "Bäcker", "Krüger", "Société Dupont"),
        ("Maschinenbau", "Logistik", "Software", "Handel", "Technik"),
        ("GmbH", "AG", "GmbH & Co. KG"),
    ),
    "JP": (
        ("山田", "佐藤", "鈴木", "高橋", "田中", "渡辺", "伊藤", "中村"),
        ("製作所", "商事", "電機", "物産", "システムズ"),
        ("株式会社",),
    ),
    "KW": (
        ("Al-Sabah", "Al-Ghanim", "Al-Shaya", "Boodai", "Al-Mutawa"),
        ("Trading", "General Contracting", "Logistics", "Foodstuff"),
        ("W.L.L.", "K.S.C."),
    ),
}


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
            digits.append(_B62[r])
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
            chars.append(_B62[r])
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


def _sf_attrs(kind: str, record_id: str) -> dict:
    return {"type": kind, "url": f"{SF_API}/{kind}/{record_id}"}


def _erp_ref(record_id: str, name: str) -> dict:
    return {"id": record_id, "refName": name}


def _erp_links(kind: str, record_id: str) -> list[dict]:
    return [{"rel": "self", "href": f"{ERP_API}/{kind}/{record_id}"}]


def build_catalog(world: World) -> None:
    """Products in all three catalogs, with a monthly and a yearly price per currency."""
    created = midnight(date(2022, 1, 3)) + 9 * 3600
    for product in PRODUCTS:
        add_product(world, product, created=created, in_erp=True)


def add_product(world: World, product: Product, *, created: int, in_erp: bool) -> None:
    ids = world.ids
    p2_id = ids.salesforce("01t")
    world.product2[product.sku] = world.add(
        "crm/Product2",
        {
            "attributes": _sf_attrs("Product2", p2_id),
            "Id": p2_id,
            "ProductCode": product.sku,
            "Name": product.name,
            "Family": product.family,
            "IsActive": True,
            "SystemModstamp": sf_datetime(created),
            "IsDeleted": False,
        },
    )
    prod_id = ids.stripe("prod")
    world.billing_product[product.sku] = world.add(
        "billing/products",
        {
            "id": prod_id,
            "object": "product",
            "active": True,
            "name": product.name,
            "created": created,
            "updated": created,
            "metadata": {"sku": product.sku},
        },
    )
    for currency, factor in _PRICE_FACTOR.items():
        for interval, per_month in (
            ("month", product.usd_monthly),
            ("year", product.usd_yearly_per_month),
        ):
            monthly = round(per_month * factor)
            world.prices[(product.sku, currency, interval)] = world.add(
                "billing/prices",
                {
                    "id": ids.stripe("price"),
                    "object": "price",
                    "product": prod_id,
                    "currency": currency.lower(),
                    "unit_amount": monthly if interval == "month" else monthly * 12,
                    "type": "recurring",
                    "recurring": {
                        "interval": interval,
                        "interval_count": 1,
                        "usage_type": "licensed",
                    },
                    "active": True,
                    "created": created,
                },
            )
    if in_erp:
        item_id = ids.erp("item")
        world.erp_items[product.sku] = world.add(
            "erp/item",
            {
                "links": _erp_links("inventoryItem", item_id),
                "id": item_id,
                "itemId": product.sku,
                "displayName": product.name,
                "externalId": prod_id,
                "isInactive": False,
                "lastModifiedDate": iso_z(created + 600),
            },
        )


def build_subsidiaries(world: World) -> None:
    for entity in ENTITIES:
        world.add(
            "erp/subsidiary",
            {
                "links": _erp_links("subsidiary", entity.subsidiary_id),
                "id": entity.subsidiary_id,
                "name": entity.subsidiary_name,
                "country": entity.country,
                "currency": _erp_ref(CURRENCY_IDS[entity.currency], entity.currency),
                "custrecord_legal_entity_code": entity.code,
                "lastModifiedDate": "2022-01-01T00:00:00Z",
            },
        )


def build_currency_rates(world: World) -> None:
    """A rate per foreign currency on the first of every month of the window, in the base
    currency of the first subsidiary, consistent with the prices (no random draw: the rest
    of the world stays the same for a seed)."""
    base = ENTITIES[0].currency
    months = [add_months(world.window_start, n) for n in range(world.months)]
    for entity in ENTITIES[1:]:
        # One major unit in the base currency's major units, as the price factors imply.
        par = 10 ** (entity.exponent - EXPONENTS[base]) / _PRICE_FACTOR[entity.currency]
        for n, start in enumerate(months):
            rate_id = str(len(world.files["erp/currencyrate"]) + 1)
            world.add(
                "erp/currencyrate",
                {
                    "id": rate_id,
                    "baseCurrency": _erp_ref(CURRENCY_IDS[base], base),
                    "transactionCurrency": _erp_ref(CURRENCY_IDS[entity.currency], entity.currency),
                    "exchangeRate": round(par * (1 + 0.01 * (n % 5 - 2)), 8),
                    "effectiveDate": day(start),
                },
            )


def _company_name(rng: random.Random, country: str) -> str:
    firsts, seconds, suffixes = _NAME_PARTS[country]
    first, second, suffix = rng.choice(firsts), rng.choice(seconds), rng.choice(suffixes)
    if country == "JP":
        return f"{suffix}{first}{second}"
    return f"{first} {second} {suffix}"


def _unique_name(world: World, country: str) -> str:
    base = _company_name(world.rng, country)
    name, n = base, 1
    while (norm_name(name), country) in world.names_taken:
        n += 1
        name = f"{base} {n}"
    world.names_taken.add((norm_name(name), country))
    return name


def _lookalike_name(world: World, name: str, country: str) -> str | None:
    """A real, different customer whose name differs only in case or spacing."""
    variant = name.upper() if name != name.upper() else name.lower()
    variant = variant.replace(" ", "  ", 1)
    if (norm_name(variant), country) in world.names_taken:
        return None
    world.names_taken.add((norm_name(variant), country))
    return variant


def _pick_entity(rng: random.Random) -> Entity:
    return rng.choices(ENTITIES, weights=[e.weight for e in ENTITIES])[0]


def build_customers(world: World, count: int) -> None:
    """Accounts with hierarchies, opportunities, subscriptions, invoices and ERP postings."""
    rng = world.rng
    won_accounts: list[dict] = []
    for index in range(count):
        entity = _pick_entity(rng)
        name = _unique_name(world, entity.country)
        if world.customers and rng.random() < 0.03:
            other = rng.choice(world.customers)
            if other.entity.country != entity.country:
                name = _lookalike_name(world, other.account["Name"], entity.country) or name
        won = rng.random() < 0.8
        parent = rng.choice(won_accounts) if won_accounts and rng.random() < 0.1 else None
        customer = _new_customer(world, index, entity, name, parent_id=parent and parent["Id"])
        if won:
            _build_won(world, customer)
            won_accounts.append(customer.account)
            world.customers.append(customer)
        else:
            _build_prospect(world, customer)
    _build_deleted(world, max(1, count // 100))


def _new_customer(
    world: World, index: int, entity: Entity, name: str, *, parent_id: str | None
) -> Customer:
    rng = world.rng
    jurisdiction = rng.choice(entity.jurisdictions)
    street, city, state, postal = rng.choice(ADDRESSES[jurisdiction])
    account_id = world.ids.salesforce("001")
    account = {
        "attributes": _sf_attrs("Account", account_id),
        "Id": account_id,
        "Name": name,
        "ParentId": parent_id,
        "BillingStreet": street,
        "BillingCity": city,
        "BillingState": state,
        "BillingPostalCode": postal,
        "BillingCountry": entity.country,
        "CurrencyIsoCode": entity.currency,
        "Legal_Entity__c": entity.code,
        "Tax_Jurisdiction__c": jurisdiction,
        "Billing_Customer_Id__c": None,
        "IsDeleted": False,
        "CreatedDate": None,
        "LastModifiedDate": None,
        "SystemModstamp": None,
    }
    world.add("crm/Account", account)
    slug = "".join(c for c in name.lower() if c.isascii() and c.isalnum())[:20] or "kaisha"
    return Customer(
        index=index,
        account=account,
        entity=entity,
        jurisdiction=jurisdiction,
        exempt=entity.country == "US" and rng.random() < 0.08,
        email=f"ap-{index:05d}@{slug}.example",
    )


def _set_account_times(account: dict, *, created: int, modified: int) -> None:
    account["CreatedDate"] = sf_datetime(created)
    account["LastModifiedDate"] = account["SystemModstamp"] = sf_datetime(min(modified, NOW))


def _opportunity(
    world: World,
    account: dict,
    *,
    stage: str,
    close: int,
    created: int,
    term: int,
    currency: str,
    kind: str,
    lines: list[tuple[Product, int]],
    interval: str = "month",
    modified: int | None = None,
    deleted: bool = False,
) -> tuple[dict, list[dict]]:
    """An opportunity and its line items; Amount is the sum of the lines' TotalPrice."""
    ids = world.ids
    opp_id = ids.salesforce("006")
    items, amount = [], 0
    for product, quantity in lines:
        unit = monthly_price(world, product.sku, currency, interval) * term
        amount += unit * quantity
        items.append(_line_item(world, opp_id, product, quantity, unit, currency, created))
    closed, won = stage in ("Closed Won", "Closed Lost"), stage == "Closed Won"
    opp = {
        "attributes": _sf_attrs("Opportunity", opp_id),
        "Id": opp_id,
        "AccountId": account["Id"],
        "Name": f"{account['Name']} - {kind} {day(close)[:7]}",
        "StageName": stage,
        "IsClosed": closed,
        "IsWon": won,
        "CloseDate": day(close),
        "Amount": float(major(amount, currency)),
        "CurrencyIsoCode": currency,
        "Type": kind,
        "Contract_Term_Months__c": term,
        "Billing_Subscription_Id__c": None,
        "IsDeleted": deleted,
        "CreatedDate": sf_datetime(created),
        "LastModifiedDate": sf_datetime(modified or created),
        "SystemModstamp": sf_datetime(modified or created),
    }
    world.add("crm/Opportunity", opp)
    return opp, items


def _line_item(
    world: World,
    opp_id: str,
    product: Product,
    quantity: int,
    unit: int,
    currency: str,
    created: int,
    *,
    deleted: bool = False,
) -> dict:
    item_id = world.ids.salesforce("00k")
    return world.add(
        "crm/OpportunityLineItem",
        {
            "attributes": _sf_attrs("OpportunityLineItem", item_id),
            "Id": item_id,
            "OpportunityId": opp_id,
            "Product2Id": world.product2[product.sku]["Id"],
            "ProductCode": product.sku,
            "Quantity": float(quantity),
            "UnitPrice": float(major(unit, currency)),
            "TotalPrice": float(major(unit * quantity, currency)),
            "SystemModstamp": sf_datetime(created),
            "IsDeleted": deleted,
        },
    )


def _deal_lines(rng: random.Random, *, first: bool) -> list[tuple[Product, int]]:
    core, seat, analytics, support, community = PRODUCTS
    if first and rng.random() < 0.04:
        return [(community, 1)]
    if not first:
        return [(seat, rng.randint(5, 60))] if rng.random() < 0.6 else [(analytics, 1)]
    lines = [(core, 1), (seat, rng.randint(3, 150))]
    if rng.random() < 0.3:
        lines.append((analytics, 1))
    if rng.random() < 0.2:
        lines.append((support, 1))
    return lines


def _build_won(world: World, customer: Customer) -> None:
    rng = world.rng
    n_deals = rng.choices((1, 2, 3), weights=(70, 22, 8))[0]
    plans = []
    for k in range(n_deals):
        term = rng.choice((12, 24, 36))
        r = rng.random()
        if r < 0.07:
            plan = "terminated"
            close = NOW - rng.randint(90, 28 * term) * DAY
        elif r < 0.12:
            plan = "expired"
            close = add_months(NOW, -term) - rng.randint(5, 120) * DAY
        else:
            plan = "active"
            close = NOW - rng.randint(1, 28 * term) * DAY
        plans.append((close - close % DAY, term, plan, k == 0))
    plans.sort(key=lambda p: p[0])
    first_close = plans[0][0]
    account_created = first_close - rng.randint(20, 400) * DAY + rng.randint(0, DAY - 1)
    for i, (close, term, plan, _) in enumerate(plans):
        deal = _won_deal(
            world,
            customer,
            close=close,
            term=term,
            plan=plan,
            first=i == 0,
            account_created=account_created,
        )
        customer.deals.append(deal)
    if rng.random() < 0.05:
        close = midnight(AS_OF) - rng.randint(1, 20) * DAY
        customer.deals.append(
            _won_deal(
                world,
                customer,
                close=close,
                term=12,
                plan="pending",
                first=False,
                account_created=account_created,
            )
        )
    _build_open_or_lost(
        world, customer.account, customer.currency, account_created, count=rng.choice((0, 0, 1))
    )
    _provision_billing(world, customer, created=first_close + 3600)
    _set_account_times(
        customer.account, created=account_created, modified=customer.billing["created"] + 60
    )
    if any(d.subscription for d in customer.deals):
        provision_erp_customer(world, customer)
        for bill in customer.all_bills():
            post_bill(world, customer, bill)


def _won_deal(
    world: World,
    customer: Customer,
    *,
    close: int,
    term: int,
    plan: str,
    first: bool,
    account_created: int,
) -> Deal:
    rng = world.rng
    created = max(account_created + 3600, close - rng.randint(10, 90) * DAY)
    lines = _deal_lines(rng, first=first)
    interval = "year" if rng.random() < 0.15 else "month"
    opp, items = _opportunity(
        world,
        customer.account,
        stage="Closed Won",
        close=close,
        created=created,
        term=term,
        currency=customer.currency,
        kind="New Business" if first else "Upsell",
        lines=lines,
        interval=interval,
        modified=close + 7200,
    )
    if rng.random() < 0.03:
        seat = PRODUCTS[1]
        unit = monthly_price(world, seat.sku, customer.currency, interval) * term
        items.append(
            _line_item(world, opp["Id"], seat, 2, unit, customer.currency, created, deleted=True)
        )
    start = close + rng.randint(1, 11) * 3600
    end = add_months(start, term) - DAY
    contract_id = world.ids.salesforce("800")
    contract = world.add(
        "crm/Contract",
        {
            "attributes": _sf_attrs("Contract", contract_id),
            "Id": contract_id,
            "AccountId": customer.account["Id"],
            "StartDate": day(start),
            "EndDate": day(end),
            "ContractTerm": term,
            "Status": "Draft",
            "Opportunity__c": opp["Id"],
            "SystemModstamp": sf_datetime(close + 3600),
            "IsDeleted": False,
        },
    )
    deal = Deal(opportunity=opp, lines=items, contract=contract)
    if plan == "pending":
        return deal
    canceled_at = None
    if plan == "terminated":
        canceled_at = min(start + rng.randint(30, 28 * term) * DAY, NOW - DAY)
        contract.update(Status="Terminated", EndDate=day(canceled_at))
    elif plan == "expired":
        canceled_at = end + DAY
        contract["Status"] = "Expired"
    else:
        contract["Status"] = "Activated"
    contract["SystemModstamp"] = sf_datetime(min(NOW - 60, canceled_at or start) + 60)
    deal.subscription = new_subscription(
        world,
        customer,
        start=start,
        interval=interval,
        canceled_at=canceled_at,
        lines=lines,
        opportunity_id=opp["Id"],
        cancel_at_period_end=plan == "active" and rng.random() < 0.03,
    )
    opp["Billing_Subscription_Id__c"] = deal.subscription["id"]
    opp["LastModifiedDate"] = opp["SystemModstamp"] = sf_datetime(start + 60)
    return deal


def _build_open_or_lost(
    world: World, account: dict, currency: str, account_created: int, *, count: int
) -> None:
    rng = world.rng
    for _ in range(count):
        stage = rng.choice(
            (
                "Closed Lost",
                "Prospecting",
                "Qualification",
                "Proposal/Price Quote",
                "Negotiation/Review",
            )
        )
        created = max(account_created + DAY, NOW - rng.randint(20 * DAY, 400 * DAY))
        if stage == "Closed Lost":
            close = min(NOW, created + rng.randint(10, 120) * DAY)
        else:
            close = midnight(AS_OF) + rng.randint(5, 120) * DAY
        close -= close % DAY
        _opportunity(
            world,
            account,
            stage=stage,
            close=close,
            created=created,
            term=rng.choice((12, 24, 36)),
            currency=currency,
            kind="New Business",
            lines=_deal_lines(rng, first=True)[:2],
            modified=min(NOW, created + rng.randint(DAY // 2, 10 * DAY)),
        )


def _build_prospect(world: World, customer: Customer) -> None:
    created = NOW - world.rng.randint(30 * DAY, 900 * DAY)
    _set_account_times(customer.account, created=created, modified=created + DAY)
    _build_open_or_lost(
        world, customer.account, customer.currency, created, count=world.rng.choice((1, 2))
    )


def _build_deleted(world: World, count: int) -> None:
    """Deleted accounts with their opportunities: CRM history that is never drift."""
    rng = world.rng
    for i in range(count):
        entity = _pick_entity(rng)
        customer = _new_customer(
            world, 90_000 + i, entity, _unique_name(world, entity.country), parent_id=None
        )
        created = NOW - rng.randint(200 * DAY, 700 * DAY)
        deleted_at = created + rng.randint(30, 150) * DAY
        close = created + 20 * DAY
        close -= close % DAY
        customer.account["IsDeleted"] = True
        _set_account_times(customer.account, created=created, modified=deleted_at)
        opp, items = _opportunity(
            world,
            customer.account,
            stage="Closed Won",
            close=close,
            created=created + DAY,
            term=12,
            currency=entity.currency,
            kind="New Business",
            lines=_deal_lines(rng, first=True),
            modified=deleted_at,
            deleted=True,
        )
        for item in items:
            item["IsDeleted"] = True
            item["SystemModstamp"] = sf_datetime(deleted_at)


def _provision_billing(world: World, customer: Customer, *, created: int) -> None:
    account, entity = customer.account, customer.entity
    cus_id = world.ids.stripe("cus")
    customer.billing = world.add(
        "billing/customers",
        {
            "id": cus_id,
            "object": "customer",
            "created": created,
            "livemode": False,
            "name": account["Name"],
            "email": customer.email,
            "currency": entity.currency.lower(),
            "balance": 0,
            "delinquent": False,
            "address": {
                "line1": account["BillingStreet"],
                "line2": None,
                "city": account["BillingCity"],
                "state": account["BillingState"],
                "postal_code": account["BillingPostalCode"],
                "country": entity.country,
            },
            "tax_exempt": "exempt" if customer.exempt else "none",
            "metadata": {"crm_account_id": account["Id"], "legal_entity": entity.code},
        },
    )
    account["Billing_Customer_Id__c"] = cus_id
    customer.invoice_prefix = "".join(world.rng.choices(_B62[10:36], k=8))
    for deal in customer.deals:
        if deal.subscription is not None:
            deal.subscription["customer"] = cus_id
            deal.bills = bill_subscription(world, customer, deal.subscription)


def new_subscription(
    world: World,
    customer: Customer,
    *,
    start: int,
    interval: str,
    canceled_at: int | None,
    lines: list[tuple[Product, int]],
    opportunity_id: str | None,
    cancel_at_period_end: bool = False,
) -> dict:
    """A subscription whose items match the opportunity lines at the customer's prices."""
    ids = world.ids
    sub_id = ids.stripe("sub")
    step = 12 if interval == "year" else 1
    last = min(NOW, canceled_at - 1) if canceled_at else NOW
    k = 0
    while add_months(start, (k + 1) * step) <= last:
        k += 1
    period_start, period_end = add_months(start, k * step), add_months(start, (k + 1) * step)
    items = [
        {
            "id": ids.stripe("si"),
            "object": "subscription_item",
            "price": world.prices[(product.sku, customer.currency, interval)],
            "quantity": quantity,
            "current_period_start": period_start,
            "current_period_end": period_end,
        }
        for product, quantity in lines
    ]
    return world.add(
        "billing/subscriptions",
        {
            "id": sub_id,
            "object": "subscription",
            "customer": customer.billing["id"] if customer.billing else None,
            "status": "canceled" if canceled_at else "active",
            "currency": customer.currency.lower(),
            "created": start,
            "start_date": start,
            "canceled_at": canceled_at
            if canceled_at
            else (NOW - DAY if cancel_at_period_end else None),
            "ended_at": canceled_at,
            "cancel_at_period_end": cancel_at_period_end,
            "metadata": {"crm_opportunity_id": opportunity_id} if opportunity_id else {},
            "items": {
                "object": "list",
                "url": f"/v1/subscription_items?subscription={sub_id}",
                "has_more": False,
                "data": items,
            },
        },
    )


def bill_subscription(world: World, customer: Customer, sub: dict) -> list[Bill]:
    """One invoice per billing period inside the history window, with payments."""
    step = 12 if sub["items"]["data"][0]["price"]["recurring"]["interval"] == "year" else 1
    bills, k = [], 0
    while True:
        period_start = add_months(sub["start_date"], k * step)
        k += 1
        if period_start > NOW or (sub["ended_at"] and period_start >= sub["ended_at"]):
            return bills
        if period_start >= world.window_start:
            period_end = add_months(sub["start_date"], k * step)
            bills.append(_invoice(world, customer, sub, period_start, period_end))


# A share of invoices bills the largest quantity as usage, one line per batch of units: more
# lines (25+) than Stripe embeds in an invoice, so readers must page `invoice.lines`.
USAGE_INVOICE_SHARE = 0.01
USAGE_LINES = 30


def _as_usage_lines(ids: Ids, lines: list[dict]) -> list[dict]:
    """The line with the largest quantity split into up to 30 usage lines of the same total."""
    biggest = max(range(len(lines)), key=lambda i: lines[i]["quantity"])
    line = lines[biggest]
    count = min(line["quantity"], USAGE_LINES)
    if count < 25:
        return lines
    unit = int(line["pricing"]["unit_amount_decimal"])
    name = line["description"].split(" × ", 1)[1]
    base, extra = divmod(line["quantity"], count)
    parts = [base + 1] * extra + [base] * (count - extra)
    usage = [
        {
            **line,
            "id": line["id"] if n == 0 else ids.stripe("il"),
            "amount": unit * part,
            "description": f"{part} × {name} (usage)",
            "quantity": part,
        }
        for n, part in enumerate(parts)
    ]
    return [*lines[:biggest], *usage, *lines[biggest + 1 :]]


def _invoice(world: World, customer: Customer, sub: dict, start: int, end: int) -> Bill:
    rng, ids, cur = world.rng, world.ids, customer.currency.lower()
    inv_id = ids.stripe("in")
    lines, subtotal = [], 0
    for item in sub["items"]["data"]:
        price = item["price"]
        amount = price["unit_amount"] * item["quantity"]
        subtotal += amount
        product_name = world.files["billing/products"][price["product"]]["name"]
        lines.append(
            {
                "id": ids.stripe("il"),
                "object": "line_item",
                "amount": amount,
                "currency": cur,
                "description": f"{item['quantity']} × {product_name}",
                "quantity": item["quantity"],
                "period": {"start": start, "end": end},
                "pricing": {
                    "type": "price_details",
                    "price_details": {"price": price["id"], "product": price["product"]},
                    "unit_amount_decimal": str(price["unit_amount"]),
                },
            }
        )
    if rng.random() < USAGE_INVOICE_SHARE:
        lines = _as_usage_lines(ids, lines)
    tax = tax_for(subtotal, customer.jurisdiction, exempt=customer.exempt)
    total = subtotal + tax
    status, finalized, paid_at, voided_at = "draft", None, None, None
    if day(start) != AS_OF.isoformat():
        finalized = start + 3600
        age = NOW - start
        r = rng.random()
        if total == 0:
            status, paid_at = "paid", finalized
        elif age < 10 * DAY:
            status = "paid" if r < 0.5 else "open"
        else:
            status = (
                "paid"
                if r < 0.95
                else "open"
                if r < 0.975
                else "void"
                if r < 0.99
                else ("uncollectible")
            )
        if status == "paid" and paid_at is None:
            paid_at = finalized + rng.randint(600, 10 * DAY)
            if paid_at > NOW:
                status, paid_at = "open", None
        elif status == "void":
            voided_at = finalized + rng.randint(DAY, 20 * DAY)
    if finalized is not None:
        customer.invoice_seq += 1
    reason = (
        "customer_exempt"
        if customer.exempt
        else ("standard_rated" if TAX_RATE_MILLI[customer.jurisdiction] else "not_subject_to_tax")
    )
    paid = total if status == "paid" else 0
    invoice = world.add(
        "billing/invoices",
        {
            "id": inv_id,
            "object": "invoice",
            "customer": customer.billing["id"],
            "number": f"{customer.invoice_prefix}-{customer.invoice_seq:04d}"
            if finalized
            else None,
            "status": status,
            "currency": cur,
            "created": start,
            "period_start": start,
            "period_end": end,
            "subtotal": subtotal,
            "total": total,
            "total_excluding_tax": subtotal,
            "amount_due": total,
            "amount_paid": paid,
            "amount_remaining": 0 if status in ("paid", "void") else total - paid,
            "total_taxes": [
                {
                    "amount": tax,
                    "tax_behavior": "exclusive",
                    "taxable_amount": subtotal,
                    "taxability_reason": reason,
                    "type": "tax_rate_details",
                    "tax_rate_details": {
                        "tax_rate": "txr_" + customer.jurisdiction.replace("-", "")
                    },
                }
            ],
            "parent": {
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": sub["id"],
                    "metadata": dict(sub["metadata"]),
                },
            },
            "lines": {
                "object": "list",
                "url": f"/v1/invoices/{inv_id}/lines",
                "has_more": False,
                "data": lines,
            },
            "status_transitions": {
                "finalized_at": finalized,
                "paid_at": paid_at,
                "voided_at": voided_at,
            },
            "metadata": {},
        },
    )
    bill = Bill(invoice=invoice)
    if status == "paid" and total > 0:
        bill.payment = world.add(
            "billing/invoice_payments",
            {
                "id": ids.stripe("inpay"),
                "object": "invoice_payment",
                "invoice": inv_id,
                "amount_paid": total,
                "amount_requested": total,
                "currency": cur,
                "is_default": True,
                "status": "paid",
                "payment": {"type": "payment_intent", "payment_intent": ids.stripe("pi")},
                "status_transitions": {"paid_at": paid_at, "canceled_at": None},
                "created": finalized,
                "livemode": False,
            },
        )
        if rng.random() < 0.01 and paid_at + 5 * DAY < NOW:
            bill.credit_note = world.add(
                "billing/credit_notes",
                {
                    "id": ids.stripe("cn"),
                    "object": "credit_note",
                    "invoice": inv_id,
                    "customer": customer.billing["id"],
                    "currency": cur,
                    "total": max(1, total // 10),
                    "status": "issued",
                    "created": paid_at + rng.randint(DAY, 5 * DAY),
                    "reason": "product_unsatisfactory",
                },
            )
    return bill


def provision_erp_customer(world: World, customer: Customer) -> None:
    entity, billing = customer.entity, customer.billing
    erp_id = world.ids.erp("customer")
    created = billing["created"] + 600
    customer.erp = world.add(
        "erp/customer",
        {
            "links": _erp_links("customer", erp_id),
            "id": erp_id,
            "externalId": billing["id"],
            "entityId": f"CUST-{erp_id}",
            "companyName": billing["name"],
            "email": billing["email"],
            "subsidiary": _erp_ref(entity.subsidiary_id, entity.subsidiary_name),
            "currency": _erp_ref(CURRENCY_IDS[entity.currency], entity.currency),
            "custentity_crm_account_id": customer.account["Id"],
            "custentity_tax_jurisdiction": customer.jurisdiction,
            "isInactive": False,
            "dateCreated": iso_z(created),
            "lastModifiedDate": iso_z(created),
        },
    )


_ERP_STATUS = {
    "paid": ("paidInFull", "Paid In Full"),
    "open": ("open", "Open"),
    "uncollectible": ("open", "Open"),
    "void": ("voided", "Voided"),
}


def post_bill(world: World, customer: Customer, bill: Bill) -> None:
    """Post a finalized invoice, its payment and credit note to the ERP as NetSuite would."""
    inv = bill.invoice
    finalized = inv["status_transitions"]["finalized_at"]
    if finalized is None:
        return
    ids, cur = world.ids, customer.currency
    erp_cust = customer.erp
    entity_ref = _erp_ref(erp_cust["id"], erp_cust["companyName"])
    currency_ref = _erp_ref(CURRENCY_IDS[cur], cur)
    items = []
    for line in inv["lines"]["data"]:
        price = world.files["billing/prices"][line["pricing"]["price_details"]["price"]]
        sku = world.files["billing/products"][price["product"]]["metadata"]["sku"]
        item = world.erp_items[sku]
        items.append(
            {
                "item": _erp_ref(item["id"], item["itemId"]),
                "quantity": line["quantity"],
                "rate": major(price["unit_amount"], cur),
                "amount": major(line["amount"], cur),
                "description": item["displayName"],
            }
        )
    tax = sum(t["amount"] for t in inv["total_taxes"])
    status_id, status_name = _ERP_STATUS[inv["status"]]
    tx_id = ids.erp("transaction")
    transitions = inv["status_transitions"]
    modified = max(finalized, transitions["paid_at"] or 0, transitions["voided_at"] or 0) + 300
    bill.erp_invoice = world.add(
        "erp/invoice",
        {
            "links": _erp_links("invoice", tx_id),
            "id": tx_id,
            "externalId": inv["id"],
            "tranId": f"INV-{int(tx_id):06d}",
            "tranDate": day(finalized),
            "entity": entity_ref,
            "subsidiary": _erp_ref(customer.entity.subsidiary_id, customer.entity.subsidiary_name),
            "currency": currency_ref,
            "subtotal": major(inv["subtotal"], cur),
            "taxTotal": major(tax, cur),
            "total": major(inv["total"], cur),
            "amountRemaining": major(inv["amount_remaining"], cur),
            "status": {"id": status_id, "refName": status_name},
            "item": {"items": items},
            "custbody_billing_subscription_id": inv["parent"]["subscription_details"][
                "subscription"
            ],
            "dateCreated": iso_z(finalized + 300),
            "lastModifiedDate": iso_z(min(modified, NOW)),
        },
    )
    if bill.payment is not None:
        pay_id = ids.erp("transaction")
        amount = major(bill.payment["amount_paid"], cur)
        paid_at = bill.payment["status_transitions"]["paid_at"]
        bill.erp_payment = world.add(
            "erp/customerpayment",
            {
                "links": _erp_links("customerpayment", pay_id),
                "id": pay_id,
                "externalId": bill.payment["id"],
                "tranId": f"PYMT-{int(pay_id):06d}",
                "tranDate": day(paid_at),
                "customer": entity_ref,
                "currency": currency_ref,
                "payment": amount,
                "applied": amount,
                "unapplied": major(0, cur),
                "apply": {"items": [{"doc": {"id": tx_id}, "apply": True, "amount": amount}]},
                "lastModifiedDate": iso_z(min(paid_at + 300, NOW)),
            },
        )
    if bill.credit_note is not None:
        memo_id = ids.erp("transaction")
        created = bill.credit_note["created"]
        bill.erp_credit_memo = world.add(
            "erp/creditmemo",
            {
                "links": _erp_links("creditMemo", memo_id),
                "id": memo_id,
                "externalId": bill.credit_note["id"],
                "tranId": f"CM-{int(memo_id):06d}",
                "entity": entity_ref,
                "currency": currency_ref,
                "total": major(bill.credit_note["total"], cur),
                "createdFrom": {"id": tx_id},
                "tranDate": day(created),
                "lastModifiedDate": iso_z(min(created + 300, NOW)),
            },
        )


def build_world(*, customers: int, months: int, seed: int) -> World:
    """The drift-free world: every DRIFT.md rule finds nothing in it."""
    rng = random.Random(seed)
    window_start = add_months(midnight(AS_OF.replace(day=1)), -(months - 1))
    world = World(rng=rng, ids=Ids(rng), months=months, window_start=window_start)
    build_subsidiaries(world)
    build_catalog(world)
    build_customers(world, customers)
    build_currency_rates(world)
    return world
