from __future__ import annotations

import duckdb

from revops_pipelines.sandbox.raw_tables import load_raw
from revops_pipelines.schemas.master_data import VALIDATION_RULES, issue_counts
from revops_pipelines.sqlmodels import load_models, run_models

GOOD_ACCOUNT = {"Legal_Entity__c": "US01", "Tax_Jurisdiction__c": "US-CA"}


def _issues(tables: dict) -> list[tuple[str, str, str, str]]:
    con = duckdb.connect()
    base = {
        "erp_subsidiary": [{"id": "1", "custrecord_legal_entity_code": "US01"}],
        "crm_product": [{"Id": "01t1", "ProductCode": "PRO-M"}],
        "billing_product": [{"id": "prod_1", "metadata": {"sku": "PRO-M"}}],
        "erp_item": [{"id": "77", "itemid": "PRO-M"}],
    }
    load_raw(con, {**base, **tables})
    run_models(con, [m for m in load_models() if m.schema in {"staging", "canonical"}])
    counts = issue_counts(con)
    assert set(counts) == set(VALIDATION_RULES)
    return con.execute(
        "select rule, source_system, source_id, field from canonical.validation_issue order by all"
    ).fetchall()


def test_clean_master_data_has_no_issues() -> None:
    assert _issues({"crm_account": [{"Id": "001A", **GOOD_ACCOUNT}]}) == []


def test_missing_parent_and_cycle() -> None:
    issues = _issues(
        {
            "crm_account": [
                {"Id": "001A", "ParentId": "001Z", **GOOD_ACCOUNT},
                {"Id": "001B", "ParentId": "001C", **GOOD_ACCOUNT},
                {"Id": "001C", "ParentId": "001B", **GOOD_ACCOUNT},
                {"Id": "001D", "ParentId": "001B", **GOOD_ACCOUNT},  # under a cycle, not in it
            ]
        }
    )
    assert issues == [
        ("account_hierarchy_cycle", "crm", "001B", "parent_id"),
        ("account_hierarchy_cycle", "crm", "001C", "parent_id"),
        ("account_parent_missing", "crm", "001A", "parent_id"),
    ]


def test_entity_and_tax_rules() -> None:
    issues = _issues(
        {
            "crm_account": [
                {"Id": "001A", "Tax_Jurisdiction__c": "US-CA"},
                {"Id": "001B", "Legal_Entity__c": "XX99", "Tax_Jurisdiction__c": "US-CA"},
                {"Id": "001C", "Legal_Entity__c": "US01", "Tax_Jurisdiction__c": ""},
                {"Id": "001D", "Legal_Entity__c": "", "IsDeleted": True},  # history only
            ]
        }
    )
    assert issues == [
        ("legal_entity_missing", "crm", "001A", "legal_entity"),
        ("legal_entity_unmapped", "crm", "001B", "legal_entity"),
        ("tax_jurisdiction_missing", "crm", "001C", "tax_jurisdiction"),
    ]


def test_sku_on_lines_must_be_in_every_catalog() -> None:
    issues = _issues(
        {
            "crm_opportunity_line_item": [
                {"Id": "00k1", "OpportunityId": "006A", "ProductCode": "ENT-M"},
                {"Id": "00k2", "OpportunityId": "006A", "ProductCode": "PRO-M"},
            ],
            "crm_opportunity": [{"Id": "006A", "IsWon": False, "IsClosed": False}],
            "billing_invoice": [
                {
                    "id": "in_1",
                    "currency": "usd",
                    "status": "draft",
                    "lines": {
                        "data": [
                            {
                                "id": "il_1",
                                "amount": 1,
                                "pricing": {"price_details": {"product": "prod_9"}},
                            }
                        ]
                    },
                },
            ],
            "billing_product": [
                {"id": "prod_1", "metadata": {"sku": "PRO-M"}},
                {"id": "prod_9", "metadata": {"sku": "ADD-ON"}},
            ],
        }
    )
    assert issues == [
        ("sku_unaligned", "billing", "ENT-M", "sku"),
        ("sku_unaligned", "crm", "ADD-ON", "sku"),
        ("sku_unaligned", "crm", "ENT-M", "sku"),
        ("sku_unaligned", "erp", "ADD-ON", "sku"),
        ("sku_unaligned", "erp", "ENT-M", "sku"),
    ]


def test_won_opportunity_needs_term_and_contract_start() -> None:
    won = {"IsWon": True, "IsClosed": True, "StageName": "Closed Won"}
    issues = _issues(
        {
            "crm_opportunity": [
                {"Id": "006A", **won, "Contract_Term_Months__c": 12},
                {"Id": "006B", **won},
                {"Id": "006C", **won, "Contract_Term_Months__c": 12},
                {"Id": "006D", "IsWon": False, "IsClosed": True},
            ],
            "crm_contract": [
                {"Id": "800A", "Opportunity__c": "006A", "StartDate": "2025-01-01"},
                {"Id": "800B", "Opportunity__c": "006B", "StartDate": "2025-01-01"},
                {"Id": "800C", "Opportunity__c": "006C"},
            ],
        }
    )
    assert issues == [
        ("contract_start_missing", "crm", "006C", "start_date"),
        ("contract_term_missing", "crm", "006B", "term_months"),
    ]
