"""The SOQL subset: what it accepts, what it refuses, and how it compares values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revops_pipelines.sandbox.soql import (
    SoqlError,
    build_catalog,
    parse_soql,
    resolve_object,
    run_soql,
)

ACCOUNTS = [
    {
        "attributes": {"type": "Account"},
        "Id": "001000000000000003",
        "Name": "beta",
        "BillingCountry": "US",
        "IsDeleted": False,
        "SystemModstamp": "2025-03-01T10:15:00.000+0000",
    },
    {
        "Id": "001000000000000001",
        "Name": "Alpha",
        "BillingCountry": None,
        "IsDeleted": False,
        "SystemModstamp": "2025-03-01T12:15:00.000+0200",
    },
    {
        "Id": "001000000000000002",
        "Name": "gamma",
        "BillingCountry": "DE",
        "IsDeleted": True,
        "SystemModstamp": "2025-02-01T00:00:00.000+0000",
        "Extra__c": 5,
    },
]


def run(text: str, *, include_deleted: bool = False) -> list[dict]:
    query = parse_soql(text)
    name = resolve_object(query.object_name, ["Account", "Opportunity"])
    return run_soql(
        query, ACCOUNTS, catalog=build_catalog(name, ACCOUNTS), include_deleted=include_deleted
    )


def ids(rows: list[dict]) -> list[str]:
    return [row["Id"] for row in rows]


def test_parse_full_grammar():
    query = parse_soql(
        "select Id, Name from Account where SystemModstamp >= 2025-03-01T10:15:00Z "
        "and Name in ('a', 'b') and Amount > -1.5 and IsDeleted = false "
        "order by Name desc nulls last, Id limit 10"
    )
    assert query.fields == ("Id", "Name")
    assert [c.operator for c in query.conditions] == [">=", "IN", ">", "="]
    assert query.conditions[0].values[0].value == datetime(2025, 3, 1, 10, 15, tzinfo=UTC)
    assert [v.value for v in query.conditions[1].values] == ["a", "b"]
    assert query.conditions[2].values[0].value == -1.5
    assert query.order_by[0].descending and query.order_by[0].nulls_last
    assert query.limit == 10


@pytest.mark.parametrize(
    "text",
    [
        "SELECT COUNT() FROM Account",
        "SELECT Id FROM Account WHERE Name = 'a' OR Name = 'b'",
        "SELECT Id, (SELECT Id FROM Contacts) FROM Account",
        "SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Opportunity)",
        "SELECT Account.Name FROM Opportunity",
        "SELECT Id FROM Account GROUP BY Id",
        "SELECT Id FROM Account WHERE NOT Name = 'a'",
        "SELECT Id FROM Account WHERE CALENDAR_YEAR(CreatedDate) = 2025",
        "SELECT Id FROM Account WHERE SystemModstamp > 2025-03-01T10:15:00.000Z",
        "SELECT Id FROM Account WHERE Name LIKE 'a%'",
        "SELECT Id, Id FROM Account",
        "SELECT FROM Account",
        "SELECT Id FROM Account LIMIT",
        "SELECT Id FROM Account WHERE Name > null",
        "",
    ],
)
def test_outside_the_subset_is_malformed(text):
    with pytest.raises(SoqlError) as raised:
        parse_soql(text)
    assert raised.value.error_code == "MALFORMED_QUERY"


def test_unknown_object_and_field():
    with pytest.raises(SoqlError) as raised:
        run("SELECT Id FROM Lead")
    assert raised.value.error_code == "INVALID_TYPE"
    with pytest.raises(SoqlError) as raised:
        run("SELECT Id, Nope__c FROM Account")
    assert raised.value.error_code == "INVALID_FIELD"
    with pytest.raises(SoqlError) as raised:
        run("SELECT Id FROM Account ORDER BY Nope__c")
    assert raised.value.error_code == "INVALID_FIELD"


def test_fields_are_case_insensitive_and_answered_in_api_casing_and_select_order():
    rows = run("SELECT name, ID, extra__c, legal_entity__c FROM account", include_deleted=True)
    assert list(rows[0]) == ["Name", "Id", "Extra__c", "Legal_Entity__c"]
    assert rows[0]["Extra__c"] is None and rows[1]["Extra__c"] == 5


def test_default_order_is_by_id_and_deleted_rows_only_with_query_all():
    assert ids(run("SELECT Id FROM Account")) == ["001000000000000001", "001000000000000003"]
    assert len(run("SELECT Id FROM Account", include_deleted=True)) == 3


def test_datetimes_compare_as_instants_across_offsets():
    # 12:15+02:00 is 10:15Z: equal to the other record's stamp, not later.
    rows = run("SELECT Id FROM Account WHERE SystemModstamp > 2025-03-01T10:00:00Z")
    assert ids(rows) == ["001000000000000001", "001000000000000003"]
    rows = run("SELECT Id FROM Account WHERE SystemModstamp = 2025-03-01T12:15:00+02:00")
    assert ids(rows) == ["001000000000000001", "001000000000000003"]
    assert run("SELECT Id FROM Account WHERE SystemModstamp > 2025-03-01T10:15:00Z") == []


def test_null_and_in_and_string_semantics():
    assert ids(run("SELECT Id FROM Account WHERE BillingCountry = null")) == ["001000000000000001"]
    assert ids(run("SELECT Id FROM Account WHERE BillingCountry != 'US'")) == ["001000000000000001"]
    assert ids(run("SELECT Id FROM Account WHERE Name IN ('ALPHA', 'zeta')")) == [
        "001000000000000001"
    ]
    assert ids(run("SELECT Id FROM Account WHERE IsDeleted = true", include_deleted=True)) == [
        "001000000000000002"
    ]


def test_order_by_with_nulls_and_limit():
    rows = run(
        "SELECT Id, BillingCountry FROM Account ORDER BY BillingCountry", include_deleted=True
    )
    assert [r["BillingCountry"] for r in rows] == [None, "DE", "US"]
    rows = run(
        "SELECT Id, BillingCountry FROM Account ORDER BY BillingCountry DESC LIMIT 2",
        include_deleted=True,
    )
    assert [r["BillingCountry"] for r in rows] == ["US", "DE"]
    rows = run("SELECT Name FROM Account ORDER BY Name", include_deleted=True)
    assert [r["Name"] for r in rows] == ["Alpha", "beta", "gamma"]


def test_comparing_a_field_with_the_wrong_literal_type_is_refused():
    with pytest.raises(SoqlError) as raised:
        run("SELECT Id FROM Account WHERE Name > 2025-01-01T00:00:00Z")
    assert raised.value.error_code == "INVALID_QUERY_FILTER_OPERATOR"
    assert "Name" in raised.value.message


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_string_literals_round_trip(value):
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    query = parse_soql(f"SELECT Id FROM Account WHERE Name = '{escaped}'")
    assert query.conditions[0].values[0].value == value
