"""The scenario generator: contract shapes, determinism, a drift-free world, recorded drift."""

from __future__ import annotations

import json
import unicodedata
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from revops_pipelines.reconciliation.catalog import drift_codes
from revops_pipelines.sandbox.generate import generate_state
from revops_pipelines.sandbox.generate_drift import CODES

EXPONENT = {"USD": 2, "GBP": 2, "EUR": 2, "JPY": 0, "KWD": 3}
CRM_PREFIX = {
    "Account": "001",
    "Opportunity": "006",
    "OpportunityLineItem": "00k",
    "Product2": "01t",
    "Contract": "800",
}
FIELDS = {
    "crm/Account": "attributes Id Name ParentId BillingStreet BillingCity BillingState "
    "BillingPostalCode BillingCountry CurrencyIsoCode Legal_Entity__c Tax_Jurisdiction__c "
    "Billing_Customer_Id__c IsDeleted CreatedDate LastModifiedDate SystemModstamp",
    "crm/Opportunity": "Id AccountId Name StageName IsClosed IsWon CloseDate Amount "
    "CurrencyIsoCode Type Contract_Term_Months__c Billing_Subscription_Id__c IsDeleted "
    "CreatedDate LastModifiedDate SystemModstamp",
    "crm/OpportunityLineItem": "Id OpportunityId Product2Id ProductCode Quantity UnitPrice "
    "TotalPrice SystemModstamp IsDeleted",
    "crm/Product2": "Id ProductCode Name Family IsActive SystemModstamp IsDeleted",
    "crm/Contract": "Id AccountId StartDate EndDate ContractTerm Status Opportunity__c "
    "SystemModstamp IsDeleted",
    "billing/customers": "id object created livemode name email currency balance delinquent "
    "address tax_exempt metadata",
    "billing/products": "id object active name created updated metadata",
    "billing/prices": "id object product currency unit_amount type recurring active created",
    "billing/subscriptions": "id object customer status currency created start_date canceled_at "
    "ended_at cancel_at_period_end metadata items",
    "billing/invoices": "id object customer number status currency created period_start "
    "period_end subtotal total total_excluding_tax amount_due amount_paid amount_remaining "
    "total_taxes parent lines status_transitions metadata",
    "billing/invoice_payments": "id object invoice amount_paid amount_requested currency "
    "is_default status payment status_transitions created livemode",
    "billing/credit_notes": "id object invoice customer currency total status created reason",
    "billing/events": "id object type created api_version data",
    "erp/subsidiary": "id name country currency custrecord_legal_entity_code",
    "erp/customer": "id externalId entityId companyName email subsidiary currency "
    "custentity_crm_account_id custentity_tax_jurisdiction isInactive dateCreated "
    "lastModifiedDate",
    "erp/item": "id itemId displayName externalId isInactive lastModifiedDate",
    "erp/invoice": "id externalId tranId tranDate entity subsidiary currency subtotal taxTotal "
    "total amountRemaining status item custbody_billing_subscription_id dateCreated "
    "lastModifiedDate",
    "erp/customerpayment": "id externalId tranId tranDate customer currency payment applied "
    "unapplied apply lastModifiedDate",
    "erp/creditmemo": "id externalId entity currency total createdFrom tranDate lastModifiedDate",
    "erp/currencyrate": "id baseCurrency transactionCurrency exchangeRate effectiveDate",
}
NOW = int(datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC).timestamp())
INVOICE_STATUS = {"paid": "paidInFull", "open": "open", "uncollectible": "open", "void": "voided"}


def load(state: Path) -> dict[str, list[dict]]:
    return {
        name: [
            json.loads(line) for line in (state / f"{name}.jsonl").read_text("utf-8").splitlines()
        ]
        for name in FIELDS
    }


def salesforce_checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character id case-insensitively unique."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
    return "".join(
        alphabet[sum(1 << i for i, c in enumerate(id15[k : k + 5]) if c.isupper())]
        for k in (0, 5, 10)
    )


def norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def minor(value: float | int, currency: str) -> int:
    scaled = Decimal(repr(value)) * 10 ** EXPONENT[currency]
    assert scaled == scaled.to_integral_value(), f"{value} has too many decimals for {currency}"
    return int(scaled)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[dict]]]:
    out = tmp_path_factory.mktemp("clean")
    generate_state(out, customers=120, months=12, seed=11, drift_rate=0.0)
    return out, load(out)


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[dict]]]:
    out = tmp_path_factory.mktemp("drifted")
    counts = generate_state(out, customers=100, months=12, seed=3, drift_rate=0.3)
    assert counts["truth"] == 30
    return out, load(out)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    def snapshot(out: Path) -> dict[str, bytes]:
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.*"))}

    runs = {}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate_state(tmp_path / name, customers=60, months=3, seed=seed, drift_rate=0.2)
        runs[name] = snapshot(tmp_path / name)
    assert len(runs["a"]) == len(FIELDS) + 2
    assert runs["a"] == runs["b"]
    assert runs["a"]["crm/Account.jsonl"] != runs["c"]["crm/Account.jsonl"]
    assert runs["a"]["truth.jsonl"] != runs["c"]["truth.jsonl"]


def test_counts_match_files_and_manifest(tmp_path: Path) -> None:
    counts = generate_state(tmp_path, customers=30, months=2, seed=1, drift_rate=0.1)
    data = load(tmp_path)
    assert {name: len(records) for name, records in data.items()} == {
        k: v for k, v in counts.items() if k != "truth"
    }
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["format"] == 1 and manifest["seed"] == 1
    assert manifest["as_of"] == "2026-10-31" and manifest["generated_at"].startswith("2026-10-31")
    assert counts["truth"] == 3


def test_records_have_contract_fields_and_types(clean: tuple[Path, dict]) -> None:
    _, data = clean
    for name, fields in FIELDS.items():
        assert data[name] or name in ("billing/credit_notes", "erp/creditmemo"), name
        for record in data[name]:
            missing = set(fields.split()) - record.keys()
            assert not missing, (name, record.get("id") or record.get("Id"), missing)

    for name, prefix in CRM_PREFIX.items():
        for record in data[f"crm/{name}"]:
            rid = record["Id"]
            assert len(rid) == 18 and rid.startswith(prefix) and rid.isalnum()
            assert record["attributes"]["type"] == name if "attributes" in record else True
            assert record["SystemModstamp"].endswith(".000+0000")
    for name in ("crm/Account", "crm/Opportunity"):
        for record in data[name]:
            assert record["CreatedDate"] <= record["SystemModstamp"] <= "2026-10-31T23:59:59"
            assert record["LastModifiedDate"] == record["SystemModstamp"]
    for name in CRM_PREFIX:
        for record in data[f"crm/{name}"]:
            assert salesforce_checksum(record["Id"][:15]) == record["Id"][15:]
            assert record["SystemModstamp"] <= "2026-10-31T23:59:59"
    for name in (
        "billing/customers",
        "billing/subscriptions",
        "billing/invoices",
        "billing/events",
    ):
        assert all(type(r["created"]) is int and r["created"] <= NOW for r in data[name])
    for name in ("erp/customer", "erp/invoice", "erp/customerpayment"):
        assert all(r["lastModifiedDate"] <= "2026-10-31T23:59:59Z" for r in data[name])

    for inv in data["billing/invoices"]:
        money = [inv[k] for k in ("subtotal", "total", "amount_due", "amount_paid")]
        money += [t["amount"] for t in inv["total_taxes"]] + [
            li["amount"] for li in inv["lines"]["data"]
        ]
        assert all(type(v) is int for v in money), inv["id"]
        assert inv["total"] == inv["subtotal"] + sum(t["amount"] for t in inv["total_taxes"])
        assert inv["created"] <= NOW and inv["id"].startswith("in_")
    for price in data["billing/prices"]:
        assert type(price["unit_amount"]) is int and price["currency"].islower()

    decimals_seen = Counter()
    for inv in data["erp/invoice"]:
        cur = inv["currency"]["refName"]
        for key in ("subtotal", "taxTotal", "total", "amountRemaining"):
            value = inv[key]
            assert isinstance(value, int | float)
            if EXPONENT[cur] == 0:
                assert type(value) is int, (inv["id"], key, value)
            minor(value, cur)
            text = repr(value)
            decimals_seen[cur] = max(decimals_seen[cur], len(text.partition(".")[2]))
        lines = inv["item"]["items"]
        assert minor(inv["subtotal"], cur) == sum(minor(li["amount"], cur) for li in lines)
    assert decimals_seen["KWD"] == 3 and decimals_seen["JPY"] == 0

    tx_ids = [
        r["id"]
        for name in ("erp/invoice", "erp/customerpayment", "erp/creditmemo")
        for r in data[name]
    ]
    assert len(tx_ids) == len(set(tx_ids)) and all(i.isdigit() for i in tx_ids)
    subsidiaries = {
        s["custrecord_legal_entity_code"]: s["currency"]["refName"] for s in data["erp/subsidiary"]
    }
    assert subsidiaries == {
        "US01": "USD",
        "GB01": "GBP",
        "DE01": "EUR",
        "JP01": "JPY",
        "KW01": "KWD",
    }


def test_realistic_world_features(clean: tuple[Path, dict]) -> None:
    _, data = clean
    accounts = data["crm/Account"]
    assert any(a["ParentId"] for a in accounts)
    assert any(a["IsDeleted"] for a in accounts)
    assert any(not a["Name"].isascii() for a in accounts)
    assert {a["Tax_Jurisdiction__c"] for a in accounts} >= {"US-CA", "GB", "DE", "JP", "KW"}
    statuses = Counter(i["status"] for i in data["billing/invoices"])
    assert statuses["paid"] and statuses["open"]
    assert any(
        i["total"] == 0 or i["total_taxes"][0]["amount"] == 0 for i in data["billing/invoices"]
    )
    assert Counter(s["status"] for s in data["billing/subscriptions"])["canceled"]
    # usage billing: invoices with more lines than Stripe embeds, still summing to the subtotal
    usage = [i for i in data["billing/invoices"] if len(i["lines"]["data"]) >= 25]
    assert usage
    assert all(sum(li["amount"] for li in i["lines"]["data"]) == i["subtotal"] for i in usage)
    stages = Counter(o["StageName"] for o in data["crm/Opportunity"])
    assert stages["Closed Won"] and stages["Closed Lost"]
    assert {c["Status"] for c in data["crm/Contract"]} >= {"Activated", "Terminated"}
    assert data["billing/events"] and data["billing/credit_notes"]
    # Distinct customers whose names differ only in case/spacing sit in different countries.
    by_name = defaultdict(set)
    for a in accounts:
        by_name[norm(a["Name"])].add(a["BillingCountry"])
    seen = Counter(norm(a["Name"]) for a in accounts)
    for name, n in seen.items():
        assert len(by_name[name]) == n, name


def _won_accounts(data: dict) -> set[str]:
    return {
        o["AccountId"] for o in data["crm/Opportunity"] if o["IsWon"] and not o["IsDeleted"]
    } - {a["Id"] for a in data["crm/Account"] if a["IsDeleted"]}


def _invoice_problems(data: dict) -> list[tuple[str, str]]:
    """Finalized billing invoices without exactly one equal ERP invoice."""
    erp = defaultdict(list)
    for inv in data["erp/invoice"]:
        erp[inv["externalId"]].append(inv)
    problems = []
    for inv in data["billing/invoices"]:
        if inv["status_transitions"]["finalized_at"] is None:
            assert inv["id"] not in erp
            continue
        cur = inv["currency"].upper()
        posted = erp.get(inv["id"], [])
        if len(posted) != 1:
            problems.append(("count", inv["id"]))
            continue
        e = posted[0]
        if e["currency"]["refName"] != cur:
            problems.append(("currency", inv["id"]))
        elif minor(e["total"], cur) != inv["total"]:
            problems.append(("total", inv["id"]))
        elif minor(e["taxTotal"], cur) != sum(t["amount"] for t in inv["total_taxes"]):
            problems.append(("tax", inv["id"]))
        elif e["status"]["id"] != INVOICE_STATUS[inv["status"]]:
            problems.append(("status", inv["id"]))
    return problems


def _payment_problems(data: dict) -> list[str]:
    erp = {p["externalId"]: p for p in data["erp/customerpayment"]}
    return [
        p["id"]
        for p in data["billing/invoice_payments"]
        if p["status"] == "paid"
        and (
            p["id"] not in erp
            or minor(erp[p["id"]]["apply"]["items"][0]["amount"], p["currency"].upper())
            != p["amount_paid"]
        )
    ]


def _mrr(data: dict) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """Per account: CRM MRR of Activated contracts, billing MRR of active subscriptions."""
    contracts = {c["Opportunity__c"]: c for c in data["crm/Contract"] if not c["IsDeleted"]}
    crm: dict[str, Decimal] = defaultdict(Decimal)
    for o in data["crm/Opportunity"]:
        c = contracts.get(o["Id"])
        if o["IsWon"] and not o["IsDeleted"] and c and c["Status"] == "Activated":
            amount = minor(o["Amount"], o["CurrencyIsoCode"])
            crm[o["AccountId"]] += Decimal(amount) / o["Contract_Term_Months__c"]
    account_of = {c["id"]: c["metadata"].get("crm_account_id") for c in data["billing/customers"]}
    billing: dict[str, Decimal] = defaultdict(Decimal)
    for s in data["billing/subscriptions"]:
        if s["status"] != "active":
            continue
        for item in s["items"]["data"]:
            price = item["price"]
            months = 12 if price["recurring"]["interval"] == "year" else 1
            billing[account_of[s["customer"]]] += (
                Decimal(price["unit_amount"]) * item["quantity"] / months
            )
    return crm, billing


def test_drift_free_world_has_no_findings(clean: tuple[Path, dict]) -> None:
    out, data = clean
    assert (out / "truth.jsonl").read_text() == ""
    assert _invoice_problems(data) == []
    assert _payment_problems(data) == []
    # Every paid invoice with money has a paid payment; zero-total paid invoices have none.
    payments = data["billing/invoice_payments"]
    paid_by = {p["invoice"] for p in payments if p["status"] == "paid"}
    for inv in data["billing/invoices"]:
        assert (inv["status"] == "paid" and inv["total"] > 0) == (inv["id"] in paid_by)
    # Open payments (Stripe's default payment of an open invoice) have paid nothing yet.
    status = {i["id"]: i["status"] for i in data["billing/invoices"]}
    for payment in payments:
        if payment["status"] == "open":
            assert payment["amount_paid"] is None and status[payment["invoice"]] == "open"

    billing_by_account = {c["metadata"].get("crm_account_id"): c for c in data["billing/customers"]}
    accounts = {a["Id"]: a for a in data["crm/Account"]}
    for account_id in _won_accounts(data):
        customer = billing_by_account[account_id]
        assert accounts[account_id]["Billing_Customer_Id__c"] == customer["id"]
        assert accounts[account_id]["Legal_Entity__c"] == customer["metadata"]["legal_entity"]
        assert norm(accounts[account_id]["Name"]) == norm(customer["name"])

    erp_customers = {c["externalId"]: c for c in data["erp/customer"]}
    with_activity = {s["customer"] for s in data["billing/subscriptions"]}
    with_activity |= {i["customer"] for i in data["billing/invoices"]}
    for customer in data["billing/customers"]:
        if customer["id"] in with_activity:
            e = erp_customers[customer["id"]]
            # a billing customer without email gives an ERP customer without one
            assert (e["companyName"], e["email"]) == (customer["name"], customer["email"])

    crm, billing = _mrr(data)
    assert crm and {k: v for k, v in crm.items() if v} == {k: v for k, v in billing.items() if v}

    subs = {s["id"]: s for s in data["billing/subscriptions"]}
    contracts = {c["Opportunity__c"]: c for c in data["crm/Contract"]}
    grace = datetime(2026, 10, 1, tzinfo=UTC).date().isoformat()
    for o in data["crm/Opportunity"]:
        if not (o["IsWon"] and not o["IsDeleted"]):
            continue
        sub = subs.get(o["Billing_Subscription_Id__c"])
        if sub is None:
            assert o["CloseDate"] > grace and contracts[o["Id"]]["Status"] == "Draft"
            continue
        # Stripe metadata may be empty; the opportunity still holds the link
        assert sub["metadata"].get("crm_opportunity_id", o["Id"]) == o["Id"]
        ended = contracts[o["Id"]]["Status"] in ("Terminated", "Expired")
        assert ended == (sub["status"] == "canceled"), o["Id"]

    for name, key in (("billing/customers", "email"), ("erp/customer", "email")):
        names = Counter(
            (norm(c.get("name") or c.get("companyName")), c[key].casefold())
            for c in data[name]
            if c[key] is not None
        )
        assert max(names.values()) == 1

    skus = [
        {p["ProductCode"] for p in data["crm/Product2"]},
        {p["metadata"]["sku"] for p in data["billing/products"]},
        {i["itemId"] for i in data["erp/item"]},
    ]
    assert skus[0] == skus[1] == skus[2]


def test_every_code_is_injected_once_each_at_rate(drifted: tuple[Path, dict]) -> None:
    out, _ = drifted
    truths = [json.loads(line) for line in (out / "truth.jsonl").read_text().splitlines()]
    codes = Counter(t["drift_type"] for t in truths)
    # The generator injects every code of the drift-code catalog, and no other.
    assert set(codes) == set(CODES) == set(drift_codes())
    for t in truths:
        assert t["entity"] == drift_codes()[t["drift_type"]].entity
    assert sum(codes.values()) == 30 and max(codes.values()) == 2
    for t in truths:
        assert t["note"] and t["entity"] in {
            "customer",
            "subscription",
            "invoice",
            "payment",
            "product",
        }
    touched = [
        t.get("crm_id") or t.get("billing_id") or t.get("erp_id") or t["expected"] for t in truths
    ]
    assert len(touched) == len(set(touched))


def test_truth_ids_exist_where_they_should(drifted: tuple[Path, dict]) -> None:
    out, data = drifted
    truths = [json.loads(line) for line in (out / "truth.jsonl").read_text().splitlines()]

    def ids(name: str, key: str = "id") -> set:
        return {r[key] for r in data[name]}

    accounts = {a["Id"]: a for a in data["crm/Account"]}
    erp_invoices = defaultdict(list)
    for inv in data["erp/invoice"]:
        erp_invoices[inv["externalId"]].append(inv["id"])
    erp_pay_ext = ids("erp/customerpayment", "externalId")
    invoice_problems = dict((b, kind) for kind, b in _invoice_problems(data))
    for t in truths:
        code = t["drift_type"]
        if code == "customer_missing_in_billing":
            assert t["crm_id"] in accounts
            assert t["crm_id"] not in {
                c["metadata"].get("crm_account_id") for c in data["billing/customers"]
            }
        elif code == "customer_missing_in_erp":
            assert t["billing_id"] in ids("billing/customers")
            assert t["billing_id"] not in ids("erp/customer", "externalId")
        elif code == "customer_missing_tax_or_entity":
            account = accounts[t["crm_id"]]
            assert account["Legal_Entity__c"] is None or account["Tax_Jurisdiction__c"] is None
            assert t["crm_id"] not in ids("erp/customer", "custentity_crm_account_id")
        elif code == "customer_attribute_mismatch":
            assert t["erp_id"] in ids("erp/customer") and t["field"] in ("name", "email")
        elif code == "customer_duplicate":
            dup = next(c for c in data["billing/customers"] if c["id"] == t["billing_id"])
            twins = [
                c
                for c in data["billing/customers"]
                if norm(c["name"]) == norm(dup["name"])
                and c["email"].lower() == dup["email"].lower()
            ]
            assert len(twins) == 2 and "crm_account_id" not in dup["metadata"]
            assert dup["id"] not in {s["customer"] for s in data["billing/subscriptions"]}
        elif code == "unlinked_match":
            assert t.get("billing_id") in ids("billing/customers") or t.get("erp_id") in ids(
                "erp/customer"
            )
        elif code == "product_unmapped":
            assert t["expected"] in ids("crm/Product2", "ProductCode")
            assert t["expected"] not in ids("erp/item", "itemId")
        elif code == "subscription_missing_for_won_opportunity":
            opp = next(o for o in data["crm/Opportunity"] if o["Id"] == t["crm_id"])
            assert opp["IsWon"] and opp["CloseDate"] < "2026-09-26"
            assert opp["Id"] not in {
                s["metadata"].get("crm_opportunity_id") for s in data["billing/subscriptions"]
            }
        elif code in ("subscription_amount_mismatch", "subscription_status_mismatch"):
            assert t["billing_id"] in ids("billing/subscriptions")
        elif code == "invoice_missing_in_erp":
            assert t["billing_id"] in ids("billing/invoices")
            assert t["billing_id"] not in erp_invoices
        elif code == "invoice_orphan_in_erp":
            ext = next(i["externalId"] for i in data["erp/invoice"] if i["id"] == t["erp_id"])
            assert ext not in ids("billing/invoices")
        elif code == "invoice_duplicate_in_erp":
            copies = erp_invoices[t["billing_id"]]
            assert len(copies) == 2 and t["erp_id"] == max(copies, key=int)
        elif code.startswith("invoice_"):
            assert erp_invoices[t["billing_id"]] == [t["erp_id"]]
            expected = code.removeprefix("invoice_").removesuffix("_mismatch")
            assert invoice_problems[t["billing_id"]] == {"amount": "total"}.get(expected, expected)
        elif code == "payment_missing_in_erp":
            assert t["billing_id"] in ids("billing/invoice_payments")
            assert t["billing_id"] not in erp_pay_ext
        elif code == "payment_amount_mismatch":
            assert t["billing_id"] in _payment_problems(data) and t["erp_id"] in ids(
                "erp/customerpayment"
            )
        elif code == "payment_orphan_in_erp":
            pay = next(p for p in data["erp/customerpayment"] if p["id"] == t["erp_id"])
            assert pay["externalId"] is None
        elif code == "mrr_mismatch":
            crm, billing = _mrr(data)
            assert billing[t["crm_id"]] > crm[t["crm_id"]]

    # Nothing else is off: every invoice or payment problem is explained by one truth line.
    customer_of = {c["metadata"].get("crm_account_id"): c["id"] for c in data["billing/customers"]}
    unposted = {t["billing_id"] for t in truths if t["drift_type"] == "customer_missing_in_erp"}
    unposted |= {
        customer_of[t["crm_id"]]
        for t in truths
        if t["drift_type"] == "customer_missing_tax_or_entity"
    }
    invoice_of = {p["id"]: p["invoice"] for p in data["billing/invoice_payments"]}
    customer_of_invoice = {i["id"]: i["customer"] for i in data["billing/invoices"]}
    explained = {t.get("billing_id") for t in truths if t["drift_type"].startswith("invoice_")}
    payment_truths = {
        t["billing_id"]
        for t in truths
        if t["drift_type"] in ("payment_missing_in_erp", "payment_amount_mismatch")
    }
    explained |= {invoice_of[p] for p in payment_truths}
    unexplained = {
        b for b in invoice_problems if b not in explained and customer_of_invoice[b] not in unposted
    }
    assert unexplained == set()
    unexplained_payments = {
        p
        for p in _payment_problems(data)
        if p not in payment_truths
        and invoice_of[p] not in explained
        and customer_of_invoice[invoice_of[p]] not in unposted
    }
    assert unexplained_payments == set()


def test_drift_count_covers_every_code_from_fifty_customers() -> None:
    from revops_pipelines.sandbox.generate_drift import drift_count

    assert drift_count(customers=200, drift_rate=0.05) == len(CODES)
    assert drift_count(customers=1000, drift_rate=0.05) == 50
    assert drift_count(customers=40, drift_rate=0.05) == 2
    assert drift_count(customers=500, drift_rate=0.0) == 0


def test_rejects_impossible_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="drift_rate"):
        generate_state(tmp_path, customers=10, months=2, seed=1, drift_rate=1.5)
    with pytest.raises(ValueError, match="months"):
        generate_state(tmp_path, customers=10, months=0, seed=1, drift_rate=0.1)


def test_generated_world_uses_the_nulls_the_real_apis_allow(
    clean: tuple[Path, dict[str, list[dict]]],
) -> None:
    _, data = clean
    payments = data["billing/invoice_payments"]
    invoices = data["billing/invoices"]
    drafts = [i for i in invoices if i["status"] == "draft"]
    assert any(p["amount_paid"] is None for p in payments)
    assert drafts and all(
        i["number"] is None and i["status_transitions"]["finalized_at"] is None for i in drafts
    )
    assert any(i["parent"] is None for i in invoices)
    assert any(c["email"] is None for c in data["billing/customers"])
    assert any(c["address"] is None for c in data["billing/customers"])
    assert any(s["metadata"] == {} for s in data["billing/subscriptions"])
    assert any(c["email"] is None for c in data["erp/customer"])
    open_without_amount = [
        o for o in data["crm/Opportunity"] if o["Amount"] is None and not o["IsClosed"]
    ]
    assert open_without_amount
    assert all(o["Amount"] is not None for o in data["crm/Opportunity"] if o["IsWon"])
