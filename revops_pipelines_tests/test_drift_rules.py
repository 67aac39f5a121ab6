"""DRIFT.md "Rules that decide the edge cases" and "Scope and meaning", one test each,
plus the representation traps that must give no finding at all."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb

from revops_pipelines_tests.canonical_rows import clean_world, codes, reconcile_world, row


def _drop(world: dict, table: str, *ids: str) -> None:
    world[table] = [r for r in world[table] if r["source_id"] not in ids]


# --- one cause, reported once at its root ---------------------------------------------------


def test_missing_customer_covers_invoices_and_payments_with_their_money() -> None:
    w = clean_world()
    _drop(w, "customer", "1234")
    _drop(w, "invoice", "5001")
    _drop(w, "payment", "6001")
    w["invoice"].append(
        {
            "source_system": "billing",
            "source_id": "in_J",
            "customer_id": "cus_A",
            "status": "open",
            "total_minor": 2_500,
        }
    )
    [finding] = reconcile_world(w)
    assert finding["drift_type"] == "customer_missing_in_erp"
    assert finding["amount_impact_minor"] == 102_500


def test_missing_invoice_covers_its_payment() -> None:
    w = clean_world()
    _drop(w, "invoice", "5001")
    _drop(w, "payment", "6001")
    assert codes(reconcile_world(w)) == ["invoice_missing_in_erp"]


def test_unpostable_customer_is_never_also_missing_in_erp() -> None:
    w = clean_world()
    row(w, "customer", "001A")["tax_jurisdiction"] = "  "
    _drop(w, "customer", "1234")
    _drop(w, "invoice", "5001")
    _drop(w, "payment", "6001")
    [finding] = reconcile_world(w)
    assert finding["drift_type"] == "customer_missing_tax_or_entity"
    assert (finding["field"], finding["amount_impact_minor"]) == ("tax_jurisdiction", 100_000)


def test_value_present_in_system_of_record_and_empty_elsewhere_is_a_mismatch() -> None:
    w = clean_world()
    row(w, "customer", "1234")["tax_jurisdiction"] = None
    [finding] = reconcile_world(w)
    assert (finding["drift_type"], finding["field"]) == (
        "customer_attribute_mismatch",
        "tax_jurisdiction",
    )
    assert (finding["expected"], finding["actual"]) == ("US-CA", None)


def test_crm_value_different_from_billing_is_reviewed() -> None:
    w = clean_world()
    row(w, "customer", "cus_A")["country"] = "CA"
    [finding] = reconcile_world(w)
    assert (finding["field"], finding["action"], finding["billing_id"]) == (
        "country",
        "review",
        "cus_A",
    )


def test_total_and_tax_both_different_is_amount_mismatch_only() -> None:
    w = clean_world()
    row(w, "invoice", "5001").update(total_minor=101_000, tax_minor=9_000)
    assert codes(reconcile_world(w)) == ["invoice_amount_mismatch"]


def test_short_payment_leaves_erp_invoice_open_without_status_finding() -> None:
    w = clean_world()
    row(w, "payment", "6001")["amount_minor"] = 50_000
    row(w, "invoice", "5001").update(status="open", amount_remaining_minor=50_000)
    assert codes(reconcile_world(w)) == ["payment_amount_mismatch"]


def test_won_opportunity_without_subscription_explains_mrr() -> None:
    w = clean_world()
    w["contract"].append(
        {
            "source_id": "006N",
            "account_id": "001A",
            "amount_minor": 240_000,
            "term_months": 12,
            "close_date": date(2025, 3, 1),
            "contract_status": "Activated",
        }
    )
    [finding] = reconcile_world(w)
    assert finding["drift_type"] == "subscription_missing_for_won_opportunity"


def test_grace_period_is_thirty_days_after_close_date() -> None:
    for close, expected in ((date(2025, 5, 29), 1), (date(2025, 5, 30), 0)):
        w = clean_world()
        w["contract"].append(
            {
                "source_id": "006N",
                "account_id": "001A",
                "amount_minor": 0,
                "term_months": 12,
                "close_date": close,
                "contract_status": "Draft",
            }
        )
        assert len(reconcile_world(w)) == expected, close


def test_won_account_without_billing_customer_covers_its_opportunities() -> None:
    w = clean_world()
    w["customer"].append(
        {
            "source_system": "crm",
            "source_id": "001B",
            "name": "Beta",
            "country": "DE",
            "legal_entity": "US01",
            "tax_jurisdiction": "DE",
        }
    )
    for n in range(3):
        w["contract"].append(
            {
                "source_id": f"006B{n}",
                "account_id": "001B",
                "amount_minor": 12_000,
                "close_date": date(2025, 6, 27),
                "contract_status": "Activated",
            }
        )
    assert codes(reconcile_world(w)) == ["customer_missing_in_billing"]


def test_unlinked_match_is_not_also_missing_in_billing() -> None:
    w = clean_world()
    row(w, "customer", "cus_A")["crm_account_id"] = None
    row(w, "customer", "001A")["billing_customer_id"] = None
    row(w, "customer", "001A")["name"] = "Acme Corp."
    row(w, "customer", "001A").pop("name_norm", None)
    assert codes(reconcile_world(w)) == ["unlinked_match"]


def test_one_sided_link_names_the_record_whose_link_is_empty() -> None:
    w = clean_world()
    row(w, "customer", "cus_A")["crm_account_id"] = ""
    [finding] = reconcile_world(w)
    assert (finding["drift_type"], finding["billing_id"], finding["field"]) == (
        "unlinked_match",
        "cus_A",
        "crm_account_id",
    )


def test_unlinked_billing_copy_of_a_linked_account_is_a_duplicate() -> None:
    w = clean_world()
    w["customer"].append(
        {
            "source_system": "billing",
            "source_id": "cus_Z",
            "name": "Acme Corp",
            "email": "other@acme.example",
            "country": "US",
            "currency": "USD",
        }
    )
    [finding] = reconcile_world(w)
    assert (finding["drift_type"], finding["billing_id"], finding["crm_id"]) == (
        "customer_duplicate",
        "cus_Z",
        "001A",
    )


def test_tied_name_matches_link_nothing() -> None:
    w = clean_world()
    row(w, "customer", "cus_A")["crm_account_id"] = None
    row(w, "customer", "001A")["billing_customer_id"] = None
    twin = {**row(w, "customer", "cus_A"), "source_id": "cus_T", "email": "t@acme.example"}
    twin["billing_customer_id"] = "cus_T"
    w["customer"].append(twin)
    assert codes(reconcile_world(w)) == ["customer_missing_in_billing"]


def test_currency_difference_wins_over_amounts() -> None:
    w = clean_world()
    row(w, "invoice", "5001").update(currency="EUR", total_minor=1, tax_minor=0, status="open")
    assert codes(reconcile_world(w)) == ["invoice_currency_mismatch"]


# --- scope and meaning -----------------------------------------------------------------------


def test_drafts_are_never_expected_in_erp_but_make_the_customer_expected() -> None:
    w = clean_world()
    w["invoice"].append(
        {
            "source_system": "billing",
            "source_id": "in_D",
            "customer_id": "cus_A",
            "status": "draft",
            "total_minor": 7_000,
        }
    )
    assert reconcile_world(w) == []
    w["customer"].append(
        {
            "source_system": "billing",
            "source_id": "cus_N",
            "name": "Nu",
            "email": "n@nu.example",
            "country": "US",
        }
    )
    w["invoice"].append(
        {
            "source_system": "billing",
            "source_id": "in_N",
            "customer_id": "cus_N",
            "status": "draft",
            "total_minor": 7_000,
        }
    )
    [finding] = reconcile_world(w)
    assert (finding["drift_type"], finding["billing_id"]) == ("customer_missing_in_erp", "cus_N")
    assert finding["amount_impact_minor"] is None


def test_void_invoices_are_expected_in_erp_as_voided() -> None:
    w = clean_world()
    row(w, "invoice", "in_I")["status"] = "void"
    row(w, "invoice", "5001")["status"] = "void"
    _drop(w, "payment", "inpay_P", "6001")
    assert reconcile_world(w) == []
    _drop(w, "invoice", "5001")
    assert codes(reconcile_world(w)) == ["invoice_missing_in_erp"]


def test_deleted_crm_records_are_history() -> None:
    w = clean_world()
    w["customer"].append(
        {
            "source_system": "crm",
            "source_id": "001D",
            "name": "Gone",
            "country": "US",
            "is_deleted": True,
        }
    )
    w["contract"].append(
        {"source_id": "006D", "account_id": "001D", "amount_minor": 100, "is_deleted": True}
    )
    w["contract"].append(
        {
            "source_id": "006E",
            "account_id": "001A",
            "amount_minor": 100,
            "is_deleted": True,
            "close_date": date(2024, 1, 1),
        }
    )
    assert reconcile_world(w) == []


def test_status_maps() -> None:
    for billing, erp in (("uncollectible", "open"), ("open", "open")):
        w = clean_world()
        row(w, "invoice", "in_I").update(status=billing, amount_remaining_minor=100_000)
        row(w, "invoice", "5001").update(status=erp, amount_remaining_minor=100_000)
        _drop(w, "payment", "inpay_P", "6001")
        assert reconcile_world(w) == [], billing
    for sub_status, contract in (
        ("trialing", "Activated"),
        ("past_due", "Activated"),
        ("unpaid", "Expired"),
        ("incomplete_expired", "Terminated"),
    ):
        w = clean_world()
        row(w, "subscription", "sub_S")["status"] = sub_status
        row(w, "contract", "006O")["contract_status"] = contract
        found = codes(reconcile_world(w))
        assert "subscription_status_mismatch" not in found, sub_status


def test_draft_contract_with_active_subscription_is_a_status_mismatch() -> None:
    w = clean_world()
    row(w, "contract", "006O")["contract_status"] = "Draft"
    assert codes(reconcile_world(w)) == ["subscription_status_mismatch"]


def test_erp_invoice_paid_while_billing_open_is_review() -> None:
    w = clean_world()
    row(w, "invoice", "in_I").update(status="open", amount_remaining_minor=100_000)
    _drop(w, "payment", "inpay_P")
    [*found] = reconcile_world(w)
    status = [f for f in found if f["drift_type"] == "invoice_status_mismatch"]
    assert status and status[0]["action"] == "review"


def test_duplicate_names_the_highest_internal_id() -> None:
    w = clean_world()
    row(w, "invoice", "5001")["source_id"] = "900"
    row(w, "payment", "6001")["invoice_id"] = "900"
    w["invoice"].append({**row(w, "invoice", "900"), "source_id": "1000"})
    [finding] = reconcile_world(w)
    assert (finding["drift_type"], finding["erp_id"]) == ("invoice_duplicate_in_erp", "1000")


def test_erp_records_naming_no_billing_record_are_orphans() -> None:
    w = clean_world()
    w["invoice"].append(
        {
            "source_system": "erp",
            "source_id": "5002",
            "billing_invoice_id": "in_GONE",
            "status": "open",
            "total_minor": 10,
        }
    )
    w["payment"].append(
        {
            "source_system": "erp",
            "source_id": "6002",
            "billing_payment_id": "inpay_GONE",
            "invoice_id": "5002",
            "amount_minor": 10,
        }
    )
    assert codes(reconcile_world(w)) == ["invoice_orphan_in_erp", "payment_orphan_in_erp"]


def test_sku_only_on_an_invoice_line_is_unmapped_once_per_system() -> None:
    w = clean_world()
    w["invoice_line"].append(
        {"source_system": "billing", "source_id": "il_X", "invoice_id": "in_I", "sku": "ADDON-1"}
    )
    found = reconcile_world(w)
    assert codes(found) == ["product_unmapped"] * 3
    assert {f["expected"] for f in found} == {"ADDON-1"}
    assert len({f["exception_id"] for f in found}) == 3


def test_duplicate_within_one_system_names_the_later_copy() -> None:
    w = clean_world()
    w["customer"].append(
        {
            **row(w, "customer", "1234"),
            "source_id": "1299",
            "billing_customer_id": None,
            "created_at": datetime(2025, 3, 1, tzinfo=UTC),
        }
    )
    [finding] = reconcile_world(w)
    assert (finding["drift_type"], finding["erp_id"]) == ("customer_duplicate", "1299")


def test_tolerance_per_currency() -> None:
    w = clean_world()
    row(w, "invoice", "5001").update(total_minor=100_001, subtotal_minor=92_001)
    assert codes(reconcile_world(w)) == ["invoice_amount_mismatch"]
    assert reconcile_world(w, tolerances={"usd": 1}) == []
    assert codes(reconcile_world(w, tolerances={"EUR": 5})) == ["invoice_amount_mismatch"]


# --- representation traps: none of these is drift ---------------------------------------------


def _trap_world() -> dict:
    w = clean_world()
    # Case, whitespace and Unicode width differ; the canonical *_norm columns agree.
    crm, bil, erp = (
        row(w, "customer", "001A"),
        row(w, "customer", "cus_A"),
        row(w, "customer", "1234"),
    )
    for record, name in ((bil, "  ACME   corp "), (erp, "Ａｃｍｅ Corp")):
        record["name"] = name
        record.pop("name_norm", None)
    erp["email"] = " AP@Acme.Example "
    bil["country"] = "us"
    crm["legal_entity"] = " us01 "
    # Timestamps in another zone; the subscription will end at period end only.
    row(w, "subscription", "sub_S").update(
        cancel_at_period_end=True, canceled_at=datetime(2025, 6, 1, tzinfo=UTC)
    )
    # A JPY and a KWD customer, money already in minor units on both sides.
    for cur, total, n in (("JPY", 53_165, "J"), ("KWD", 12_345, "K")):
        w["invoice"] += [
            {
                "source_system": "billing",
                "source_id": f"in_{n}",
                "customer_id": "cus_A",
                "status": "open",
                "total_minor": total,
                "currency": cur,
                "amount_remaining_minor": total,
            },
            {
                "source_system": "erp",
                "source_id": f"50{n}",
                "billing_invoice_id": f"in_{n}",
                "customer_id": "1234",
                "status": "open",
                "total_minor": total,
                "currency": cur.lower(),
                "amount_remaining_minor": total,
            },
        ]
    # A zero-total invoice, paid without any payment.
    w["invoice"] += [
        {
            "source_system": "billing",
            "source_id": "in_Z",
            "customer_id": "cus_A",
            "status": "paid",
            "total_minor": 0,
        },
        {
            "source_system": "erp",
            "source_id": "5099",
            "billing_invoice_id": "in_Z",
            "customer_id": "1234",
            "status": "open",
            "total_minor": 0,
        },
    ]
    # A draft invoice and a deleted account and opportunity.
    w["invoice"].append(
        {
            "source_system": "billing",
            "source_id": "in_D",
            "customer_id": "cus_A",
            "status": "draft",
            "total_minor": 9,
        }
    )
    w["customer"].append(
        {"source_system": "crm", "source_id": "001X", "name": "Old", "is_deleted": True}
    )
    w["contract"].append(
        {
            "source_id": "006X",
            "account_id": "001X",
            "amount_minor": 5,
            "is_deleted": True,
            "close_date": date(2024, 1, 1),
        }
    )
    # An account hierarchy: the child's contract is not rolled up into the parent.
    w["customer"] += [
        {
            "source_system": "crm",
            "source_id": "001C",
            "name": "Acme Child",
            "parent_id": "001A",
            "billing_customer_id": "cus_C",
            "legal_entity": "US01",
            "tax_jurisdiction": "US-NY",
        },
        {
            "source_system": "billing",
            "source_id": "cus_C",
            "crm_account_id": "001C",
            "name": "Acme Child",
            "email": "c@acme.example",
            "legal_entity": "US01",
        },
        {
            "source_system": "erp",
            "source_id": "1235",
            "billing_customer_id": "cus_C",
            "crm_account_id": "001C",
            "name": "Acme Child",
            "email": "c@acme.example",
            "legal_entity": "US01",
            "tax_jurisdiction": "US-NY",
        },
    ]
    w["contract"].append(
        {
            "source_id": "006C",
            "account_id": "001C",
            "amount_minor": 60_000,
            "term_months": 12,
            "billing_subscription_id": "sub_C",
            "contract_status": "Activated",
        }
    )
    w["subscription"].append({"source_id": "sub_C", "customer_id": "cus_C"})
    w["subscription_item"].append(
        {
            "source_id": "si_C",
            "subscription_id": "sub_C",
            "sku": "PRO-M",
            "quantity": 1,
            "unit_amount_minor": 60_000,
            "interval": "year",
        }
    )
    return w


def test_representation_traps_give_no_findings() -> None:
    assert reconcile_world(_trap_world()) == []


def test_session_time_zone_does_not_move_the_grace_period() -> None:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'Pacific/Kiritimati'")
    w = clean_world()
    w["contract"].append(
        {
            "source_id": "006N",
            "account_id": "001A",
            "amount_minor": 0,
            "close_date": date(2025, 5, 30),
            "contract_status": "Draft",
        }
    )
    assert reconcile_world(w, con=con) == []
