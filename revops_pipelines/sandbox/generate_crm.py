"""The CRM's records of the generated world (Salesforce shapes): accounts, opportunities with
their line items, contracts, the product catalog, and the prospects and deleted accounts that
are CRM history only."""

from __future__ import annotations

import random

from revops_pipelines.sandbox.generate_core import (
    AS_OF,
    DAY,
    ENTITIES,
    NOW,
    PRODUCTS,
    Customer,
    Entity,
    Product,
    World,
    day,
    major,
    midnight,
    monthly_price,
    norm_name,
    sf_datetime,
)

SF_API = "/services/data/v59.0/sobjects"

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


def sf_attrs(kind: str, record_id: str) -> dict:
    return {"type": kind, "url": f"{SF_API}/{kind}/{record_id}"}


def add_crm_product(world: World, product: Product, *, created: int) -> None:
    p2_id = world.ids.salesforce("01t")
    world.product2[product.sku] = world.add(
        "crm/Product2",
        {
            "attributes": sf_attrs("Product2", p2_id),
            "Id": p2_id,
            "ProductCode": product.sku,
            "Name": product.name,
            "Family": product.family,
            "IsActive": True,
            "SystemModstamp": sf_datetime(created),
            "IsDeleted": False,
        },
    )


def _company_name(rng: random.Random, country: str) -> str:
    firsts, seconds, suffixes = _NAME_PARTS[country]
    first, second, suffix = rng.choice(firsts), rng.choice(seconds), rng.choice(suffixes)
    if country == "JP":
        return f"{suffix}{first}{second}"
    return f"{first} {second} {suffix}"


def unique_name(world: World, country: str) -> str:
    base = _company_name(world.rng, country)
    name, n = base, 1
    while (norm_name(name), country) in world.names_taken:
        n += 1
        name = f"{base} {n}"
    world.names_taken.add((norm_name(name), country))
    return name


def lookalike_name(world: World, name: str, country: str) -> str | None:
    """A real, different customer whose name differs only in case or spacing."""
    variant = name.upper() if name != name.upper() else name.lower()
    variant = variant.replace(" ", "  ", 1)
    if (norm_name(variant), country) in world.names_taken:
        return None
    world.names_taken.add((norm_name(variant), country))
    return variant


def pick_entity(rng: random.Random) -> Entity:
    return rng.choices(ENTITIES, weights=[e.weight for e in ENTITIES])[0]


def new_customer(
    world: World, index: int, entity: Entity, name: str, *, parent_id: str | None
) -> Customer:
    rng = world.rng
    jurisdiction = rng.choice(entity.jurisdictions)
    street, city, state, postal = rng.choice(ADDRESSES[jurisdiction])
    account_id = world.ids.salesforce("001")
    account = {
        "attributes": sf_attrs("Account", account_id),
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


def set_account_times(account: dict, *, created: int, modified: int) -> None:
    account["CreatedDate"] = sf_datetime(created)
    account["LastModifiedDate"] = account["SystemModstamp"] = sf_datetime(min(modified, NOW))


def new_opportunity(
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
        items.append(new_line_item(world, opp_id, product, quantity, unit, currency, created))
    closed, won = stage in ("Closed Won", "Closed Lost"), stage == "Closed Won"
    opp = {
        "attributes": sf_attrs("Opportunity", opp_id),
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


def new_line_item(
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
            "attributes": sf_attrs("OpportunityLineItem", item_id),
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


def new_contract(
    world: World, account: dict, opp: dict, *, start: int, end: int, term: int, signed: int
) -> dict:
    """The Draft contract of a won opportunity; provisioning sets its status."""
    contract_id = world.ids.salesforce("800")
    return world.add(
        "crm/Contract",
        {
            "attributes": sf_attrs("Contract", contract_id),
            "Id": contract_id,
            "AccountId": account["Id"],
            "StartDate": day(start),
            "EndDate": day(end),
            "ContractTerm": term,
            "Status": "Draft",
            "Opportunity__c": opp["Id"],
            "SystemModstamp": sf_datetime(signed),
            "IsDeleted": False,
        },
    )


def deal_lines(rng: random.Random, *, first: bool) -> list[tuple[Product, int]]:
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


def build_open_or_lost(
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
        new_opportunity(
            world,
            account,
            stage=stage,
            close=close,
            created=created,
            term=rng.choice((12, 24, 36)),
            currency=currency,
            kind="New Business",
            lines=deal_lines(rng, first=True)[:2],
            modified=min(NOW, created + rng.randint(DAY // 2, 10 * DAY)),
        )


def build_prospect(world: World, customer: Customer) -> None:
    created = NOW - world.rng.randint(30 * DAY, 900 * DAY)
    set_account_times(customer.account, created=created, modified=created + DAY)
    build_open_or_lost(
        world, customer.account, customer.currency, created, count=world.rng.choice((1, 2))
    )


def build_deleted(world: World, count: int) -> None:
    """Deleted accounts with their opportunities: CRM history that is never drift."""
    rng = world.rng
    for i in range(count):
        entity = pick_entity(rng)
        customer = new_customer(
            world, 90_000 + i, entity, unique_name(world, entity.country), parent_id=None
        )
        created = NOW - rng.randint(200 * DAY, 700 * DAY)
        deleted_at = created + rng.randint(30, 150) * DAY
        close = created + 20 * DAY
        close -= close % DAY
        customer.account["IsDeleted"] = True
        set_account_times(customer.account, created=created, modified=deleted_at)
        opp, items = new_opportunity(
            world,
            customer.account,
            stage="Closed Won",
            close=close,
            created=created + DAY,
            term=12,
            currency=entity.currency,
            kind="New Business",
            lines=deal_lines(rng, first=True),
            modified=deleted_at,
            deleted=True,
        )
        for item in items:
            item["IsDeleted"] = True
            item["SystemModstamp"] = sf_datetime(deleted_at)
