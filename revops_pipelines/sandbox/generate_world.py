"""A realistic, drift-free world of CRM, billing and ERP records for the sandbox.

Each customer's life runs in the order the systems see it: deals won in the CRM, the customer
and its subscriptions provisioned and billed in billing, then posted to the ERP. The records
themselves are built by `generate_crm`, `generate_billing` and `generate_erp` on the
`generate_core.World`.
"""

from __future__ import annotations

import random
from datetime import date

from revops_pipelines.sandbox.generate_billing import (
    add_billing_product,
    new_subscription,
    provision_billing,
)
from revops_pipelines.sandbox.generate_core import (
    AS_OF,
    DAY,
    NOW,
    PRODUCTS,
    Customer,
    Deal,
    Ids,
    Product,
    World,
    add_months,
    day,
    midnight,
    monthly_price,
    sf_datetime,
)
from revops_pipelines.sandbox.generate_crm import (
    add_crm_product,
    build_deleted,
    build_open_or_lost,
    build_prospect,
    deal_lines,
    lookalike_name,
    new_contract,
    new_customer,
    new_line_item,
    new_opportunity,
    pick_entity,
    set_account_times,
    unique_name,
)
from revops_pipelines.sandbox.generate_erp import (
    add_erp_item,
    build_currency_rates,
    build_subsidiaries,
    post_bill,
    provision_erp_customer,
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


def build_catalog(world: World) -> None:
    """Products in all three catalogs, with a monthly and a yearly price per currency."""
    created = midnight(date(2022, 1, 3)) + 9 * 3600
    for product in PRODUCTS:
        add_product(world, product, created=created, in_erp=True)


def add_product(world: World, product: Product, *, created: int, in_erp: bool) -> None:
    """One product in the CRM and billing catalogs, and in the ERP's when `in_erp`."""
    add_crm_product(world, product, created=created)
    billing_id = add_billing_product(world, product, created=created)
    if in_erp:
        add_erp_item(world, product, created=created, billing_id=billing_id)


def build_customers(world: World, count: int) -> None:
    """Accounts with hierarchies, opportunities, subscriptions, invoices and ERP postings."""
    rng = world.rng
    won_accounts: list[dict] = []
    for index in range(count):
        entity = pick_entity(rng)
        name = unique_name(world, entity.country)
        if world.customers and rng.random() < 0.03:
            other = rng.choice(world.customers)
            if other.entity.country != entity.country:
                name = lookalike_name(world, other.account["Name"], entity.country) or name
        won = rng.random() < 0.8
        parent = rng.choice(won_accounts) if won_accounts and rng.random() < 0.1 else None
        customer = new_customer(world, index, entity, name, parent_id=parent and parent["Id"])
        if won:
            _build_won(world, customer)
            won_accounts.append(customer.account)
            world.customers.append(customer)
        else:
            build_prospect(world, customer)
    build_deleted(world, max(1, count // 100))


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
    build_open_or_lost(
        world, customer.account, customer.currency, account_created, count=rng.choice((0, 0, 1))
    )
    provision_billing(world, customer, created=first_close + 3600)
    set_account_times(
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
    lines = deal_lines(rng, first=first)
    interval = "year" if rng.random() < 0.15 else "month"
    opp, items = new_opportunity(
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
            new_line_item(world, opp["Id"], seat, 2, unit, customer.currency, created, deleted=True)
        )
    start = close + rng.randint(1, 11) * 3600
    end = add_months(start, term) - DAY
    contract = new_contract(
        world, customer.account, opp, start=start, end=end, term=term, signed=close + 3600
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
