"""One minimal case per drift code: the clean world plus one change gives exactly one finding."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from revops_pipelines_tests.canonical_rows import clean_world, codes, reconcile_world, row

World = dict[str, list[dict[str, Any]]]


def test_clean_world_has_no_findings() -> None:
    assert reconcile_world(clean_world()) == []


def _won_account_without_billing(w: World) -> None:
    w["customer"].append(
        {
            "source_system": "crm",
            "source_id": "001B",
            "name": "Beta GmbH",
            "country": "DE",
            "legal_entity": "DE01",
            "tax_jurisdiction": "DE",
        }
    )
    w["contract"].append(
        {
            "source_id": "006B",
            "account_id": "001B",
            "amount_minor": 120_000,
            "term_months": 12,
            "close_date": date(2025, 1, 1),
            "contract_status": "Activated",
        }
    )


def _billing_customer_without_erp(w: World) -> None:
    w["customer"] = [c for c in w["customer"] if c["source_system"] != "erp"]
    w["invoice"] = [i for i in w["invoice"] if i["source_system"] != "erp"]
    w["payment"] = [p for p in w["payment"] if p["source_system"] != "erp"]


def _erp_name_changed(w: World) -> None:
    row(w, "customer", "1234")["name"] = "Acme Corporation Ltd"
    row(w, "customer", "1234").pop("name_norm", None)


def _billing_email_changed_in_erp(w: World) -> None:
    row(w, "customer", "1234")["email"] = "billing@acme.example"


def _billing_duplicate(w: World) -> None:
    w["customer"].append(
        {
            **row(w, "customer", "cus_A"),
            "source_id": "cus_A2",
            "billing_customer_id": None,
            "created_at": row(w, "customer", "cus_A").get("created_at") or None,
        }
    )
    w["customer"][-1].pop("created_at", None)
    w["customer"][-1]["created_at"] = None  # unknown creation sorts after the original


def _missing_entity(w: World) -> None:
    row(w, "customer", "001A")["legal_entity"] = None


def _unknown_entity(w: World) -> None:
    row(w, "customer", "001A")["legal_entity"] = "ZZ99"


def _unlinked_billing(w: World) -> None:
    row(w, "customer", "cus_A")["crm_account_id"] = None
    row(w, "customer", "001A")["billing_customer_id"] = None


def _sku_missing_in_erp(w: World) -> None:
    w["product"] = [p for p in w["product"] if p["source_system"] != "erp"]


def _opportunity_without_subscription(w: World) -> None:
    w["contract"].append(
        {
            "source_id": "006N",
            "account_id": "001A",
            "amount_minor": 0,
            "term_months": 12,
            "close_date": date(2025, 5, 1),
            "contract_status": "Draft",
        }
    )


def _subscription_amount(w: World) -> None:
    row(w, "subscription_item", "si_S")["quantity"] = 11


def _subscription_status(w: World) -> None:
    row(w, "subscription", "sub_S")["status"] = "canceled"


def _erp_invoice_missing(w: World) -> None:
    w["invoice"] = [i for i in w["invoice"] if i["source_id"] != "5001"]
    w["payment"] = [p for p in w["payment"] if p["source_id"] != "6001"]


def _erp_invoice_orphan(w: World) -> None:
    w["invoice"].append(
        {
            "source_system": "erp",
            "source_id": "5009",
            "billing_invoice_id": None,
            "customer_id": "1234",
            "status": "open",
            "total_minor": 5_000,
        }
    )


def _erp_invoice_duplicate(w: World) -> None:
    w["invoice"].append({**row(w, "invoice", "5001"), "source_id": "5010"})


def _erp_invoice_total(w: World) -> None:
    row(w, "invoice", "5001").update(total_minor=100_100, subtotal_minor=92_100)


def _erp_invoice_tax(w: World) -> None:
    row(w, "invoice", "5001").update(tax_minor=7_000, subtotal_minor=93_000)


def _erp_invoice_currency(w: World) -> None:
    row(w, "invoice", "5001").update(currency="EUR", total_minor=95_000)


def _erp_invoice_void(w: World) -> None:
    row(w, "invoice", "5001")["status"] = "void"


def _erp_payment_missing(w: World) -> None:
    w["payment"] = [p for p in w["payment"] if p["source_id"] != "6001"]
    row(w, "invoice", "5001").update(status="open", amount_remaining_minor=100_000)


def _erp_payment_short(w: World) -> None:
    row(w, "payment", "6001")["amount_minor"] = 90_000
    row(w, "invoice", "5001").update(status="open", amount_remaining_minor=10_000)


def _erp_payment_orphan(w: World) -> None:
    w["payment"].append(
        {
            "source_system": "erp",
            "source_id": "6009",
            "billing_payment_id": None,
            "invoice_id": "5001",
            "customer_id": "1234",
            "amount_minor": 1,
        }
    )


def _extra_billing_subscription(w: World) -> None:
    w["subscription"].append({"source_id": "sub_X", "customer_id": "cus_A"})
    w["subscription_item"].append(
        {
            "source_id": "si_X",
            "subscription_id": "sub_X",
            "sku": "PRO-M",
            "unit_amount_minor": 5_000,
        }
    )


CASES: list[tuple[str, Callable[[World], None], dict[str, Any]]] = [
    ("customer_missing_in_billing", _won_account_without_billing, {"crm_id": "001B"}),
    (
        "customer_missing_in_erp",
        _billing_customer_without_erp,
        {
            "billing_id": "cus_A",
            "amount_impact_minor": 100_000,
            "currency": "USD",
            "action": "auto",
        },
    ),
    (
        "customer_attribute_mismatch",
        _erp_name_changed,
        {
            "erp_id": "1234",
            "field": "name",
            "expected": "Acme Corp",
            "actual": "Acme Corporation Ltd",
            "action": "auto",
        },
    ),
    (
        "customer_attribute_mismatch",
        _billing_email_changed_in_erp,
        {"erp_id": "1234", "field": "email", "expected": "ap@acme.example"},
    ),
    ("customer_duplicate", _billing_duplicate, {"billing_id": "cus_A2", "crm_id": "001A"}),
    ("customer_missing_tax_or_entity", _missing_entity, {"crm_id": "001A", "action": "review"}),
    ("customer_missing_tax_or_entity", _unknown_entity, {"crm_id": "001A", "actual": "ZZ99"}),
    (
        "unlinked_match",
        _unlinked_billing,
        {"crm_id": "001A", "billing_id": "cus_A", "action": "auto"},
    ),
    ("product_unmapped", _sku_missing_in_erp, {"field": "sku", "expected": "PRO-M"}),
    (
        "subscription_missing_for_won_opportunity",
        _opportunity_without_subscription,
        {"crm_id": "006N", "correlation_id": "006N"},
    ),
    (
        "subscription_amount_mismatch",
        _subscription_amount,
        {"crm_id": "006O", "billing_id": "sub_S", "expected": "100000", "actual": "110000"},
    ),
    (
        "subscription_status_mismatch",
        _subscription_status,
        {"billing_id": "sub_S", "expected": "canceled", "actual": "Activated", "action": "auto"},
    ),
    (
        "invoice_missing_in_erp",
        _erp_invoice_missing,
        {"billing_id": "in_I", "amount_impact_minor": 100_000, "correlation_id": "006O"},
    ),
    ("invoice_orphan_in_erp", _erp_invoice_orphan, {"erp_id": "5009"}),
    (
        "invoice_duplicate_in_erp",
        _erp_invoice_duplicate,
        {"billing_id": "in_I", "erp_id": "5010", "severity": "critical"},
    ),
    (
        "invoice_amount_mismatch",
        _erp_invoice_total,
        {
            "billing_id": "in_I",
            "erp_id": "5001",
            "expected": "100000",
            "actual": "100100",
            "amount_impact_minor": 100,
        },
    ),
    ("invoice_tax_mismatch", _erp_invoice_tax, {"billing_id": "in_I", "erp_id": "5001"}),
    (
        "invoice_currency_mismatch",
        _erp_invoice_currency,
        {"billing_id": "in_I", "erp_id": "5001", "severity": "critical"},
    ),
    (
        "invoice_status_mismatch",
        _erp_invoice_void,
        {"billing_id": "in_I", "erp_id": "5001", "expected": "paid", "actual": "void"},
    ),
    (
        "payment_missing_in_erp",
        _erp_payment_missing,
        {"billing_id": "inpay_P", "amount_impact_minor": 100_000},
    ),
    (
        "payment_amount_mismatch",
        _erp_payment_short,
        {"billing_id": "inpay_P", "erp_id": "6001", "amount_impact_minor": 10_000},
    ),
    ("payment_orphan_in_erp", _erp_payment_orphan, {"erp_id": "6009"}),
    (
        "mrr_mismatch",
        _extra_billing_subscription,
        {"crm_id": "001A", "billing_id": "cus_A", "expected": "105000", "actual": "100000"},
    ),
]


@pytest.mark.parametrize(
    ("code", "change", "expected"), CASES, ids=[f"{c[0]}-{c[1].__name__}" for c in CASES]
)
def test_one_change_gives_one_finding(
    code: str, change: Callable[[World], None], expected: dict[str, Any]
) -> None:
    world = clean_world()
    change(world)
    findings = reconcile_world(world)
    assert codes(findings) == [code], findings
    for column, value in expected.items():
        assert findings[0][column] == value, (column, findings[0])


def test_every_drift_code_has_a_case() -> None:
    documented = {
        "customer_missing_in_billing",
        "customer_missing_in_erp",
        "customer_attribute_mismatch",
        "customer_duplicate",
        "customer_missing_tax_or_entity",
        "unlinked_match",
        "product_unmapped",
        "subscription_missing_for_won_opportunity",
        "subscription_amount_mismatch",
        "subscription_status_mismatch",
        "invoice_missing_in_erp",
        "invoice_orphan_in_erp",
        "invoice_duplicate_in_erp",
        "invoice_amount_mismatch",
        "invoice_tax_mismatch",
        "invoice_currency_mismatch",
        "invoice_status_mismatch",
        "payment_missing_in_erp",
        "payment_amount_mismatch",
        "payment_orphan_in_erp",
        "mrr_mismatch",
    }
    assert {c[0] for c in CASES} == documented
