"""SuiteQL tables derived from ERP records, and the checks that run before a query."""

from __future__ import annotations

import pytest

from revops_pipelines.sandbox.suiteql import (
    SuiteQLEngine,
    SuiteQLError,
    build_rows,
    iso_utc,
    rewrite_time_literals,
)

USD = {"id": "1", "refName": "USD"}
JPY = {"id": "4", "refName": "JPY"}
RECORDS = {
    "subsidiary": [
        {
            "id": "1",
            "name": "Acme US",
            "country": "US",
            "currency": USD,
            "custrecord_legal_entity_code": "US01",
        },
    ],
    "customer": [
        {
            "id": "10",
            "externalId": "cus_A",
            "companyName": "Acme",
            "subsidiary": {"id": "1"},
            "currency": USD,
            "isInactive": False,
            "lastModifiedDate": "2025-02-01T00:05:00Z",
        },
        {
            "id": "11",
            "externalId": "cus_B",
            "companyName": "Sakura",
            "subsidiary": {"id": "1"},
            "currency": JPY,
            "isInactive": True,
            "lastModifiedDate": "2025-03-01T09:00:00+09:00",
        },
    ],
    "item": [{"id": "77", "itemId": "PRO-M", "isInactive": False}],
    "invoice": [
        {
            "id": "100",
            "externalId": "in_1",
            "tranId": "INV-100",
            "entity": {"id": "10"},
            "subsidiary": {"id": "1"},
            "currency": USD,
            "total": 531.65,
            "taxTotal": 41.65,
            "amountRemaining": 0.0,
            "status": {"id": "paidInFull"},
            "item": {
                "items": [
                    {
                        "item": {"id": "77"},
                        "quantity": 10,
                        "rate": 49.0,
                        "amount": 490.0,
                        "description": "Pro",
                    },
                    {"item": {"id": "77"}, "quantity": 1, "rate": 0, "amount": 0.0},
                ]
            },
            "lastModifiedDate": "2025-02-01T00:05:00.123Z",
        },
        {
            "id": "101",
            "externalId": "in_2",
            "entity": {"id": "11"},
            "currency": JPY,
            "total": 53165,
            "amountRemaining": 53165,
            "status": {"id": "open"},
            "lastModifiedDate": "2025-04-01T00:00:00Z",
        },
    ],
    "customerpayment": [
        {
            "id": "102",
            "externalId": "inpay_1",
            "customer": {"id": "10"},
            "currency": USD,
            "payment": 531.65,
            "apply": {"items": [{"doc": {"id": "100"}, "apply": True, "amount": 531.65}]},
            "lastModifiedDate": "2025-02-02T00:00:00Z",
        },
    ],
    "creditmemo": [
        {
            "id": "103",
            "externalId": "cn_1",
            "entity": {"id": "11"},
            "currency": JPY,
            "total": 1000,
            "createdFrom": {"id": "101"},
            "lastModifiedDate": "2025-04-02T00:00:00Z",
        },
    ],
}


@pytest.fixture
def engine():
    state = {"records": RECORDS, "version": 1}
    return SuiteQLEngine(records=lambda: state["records"], version=lambda: state["version"])


def test_rows_follow_the_data_model():
    tables = build_rows(RECORDS)
    transactions = {row["id"]: row for row in tables["transaction"]}
    assert {row["type"] for row in transactions.values()} == {"CustInvc", "CustPymt", "CustCred"}
    assert transactions["100"]["foreigntotal"] == 531.65
    assert transactions["100"]["status"] == "paidInFull"
    assert transactions["100"]["lastmodifieddate"] == "2025-02-01T00:05:00Z"
    assert transactions["102"]["status"] is None and transactions["102"]["entity"] == "10"
    # A payment without a subsidiary takes its customer's.
    assert transactions["102"]["subsidiary"] == "1"
    lines = tables["transactionline"]
    assert [line["id"] for line in lines] == ["100-1", "100-2"]
    links = {row["id"]: row for row in tables["previoustransactionlink"]}
    assert links["100-102"]["linktype"] == "Payment"
    assert links["100-102"]["foreignamount"] == 531.65
    assert links["101-103"]["linktype"] == "CreditMemo"
    assert {row["symbol"] for row in tables["currency"]} == {"USD", "JPY"}
    customers = {row["id"]: row for row in tables["customer"]}
    assert customers["11"]["isinactive"] == "T"
    assert customers["11"]["lastmodifieddate"] == "2025-03-01T00:00:00Z"


def test_iso_utc_normalizes_offsets_and_fractions():
    assert iso_utc("2025-01-01T01:00:00+0100") == "2025-01-01T00:00:00Z"
    assert iso_utc("2025-01-01T00:00:00.999Z") == "2025-01-01T00:00:00Z"
    assert iso_utc(None) is None


def test_to_timestamp_becomes_a_comparable_literal():
    text = "WHERE lastmodifieddate > TO_TIMESTAMP('2025-02-01 00:05:00', 'YYYY-MM-DD HH24:MI:SS')"
    assert rewrite_time_literals(text) == "WHERE lastmodifieddate > '2025-02-01T00:05:00Z'"
    assert rewrite_time_literals("x >= to_date('2025-02-01', 'YYYY-MM-DD')") == "x >= '2025-02-01'"


def test_query_filters_joins_and_types(engine):
    columns, rows = engine.rows(
        "SELECT id, foreigntotal FROM transaction WHERE type = 'CustInvc' "
        "AND lastmodifieddate > TO_TIMESTAMP('2025-02-01 00:05:00', 'YYYY-MM-DD HH24:MI:SS') "
        "ORDER BY id"
    )
    assert columns == ["id", "foreigntotal"]
    assert rows == [{"id": "101", "foreigntotal": 53165.0}]
    _, rows = engine.rows(
        "SELECT tl.transaction, tl.linesequencenumber AS LineNo, t.externalid "
        "FROM transactionline tl JOIN transaction t ON t.id = tl.transaction "
        "WHERE t.id IN ('100', '101') ORDER BY tl.id"
    )
    assert rows == [
        {"transaction": "100", "lineno": 1, "externalid": "in_1"},
        {"transaction": "100", "lineno": 2, "externalid": "in_1"},
    ]
    _, rows = engine.rows("SELECT COUNT(*) AS n FROM customer WHERE id > '10'")
    assert rows == [{"n": 1}]


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM transaction",
        "UPDATE customer SET email = 'x'",
        "DROP TABLE customer",
        "CREATE TABLE x AS SELECT 1",
        "ATTACH 'other.db'",
        "COPY customer TO 'out.csv'",
        "PRAGMA table_info('customer')",
        "SELECT 1; SELECT 2",
        "SELECT * FROM read_csv('accounts.csv')",
        "SELECT * FROM 'accounts.csv'",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM duckdb_tables()",
        "SELECT * FROM employee",
        "SELECT nope FROM customer",
        "SELECT current_setting('threads')",
        "",
    ],
)
def test_refused_queries(engine, query):
    with pytest.raises(SuiteQLError) as raised:
        engine.rows(query)
    assert raised.value.error_code == "INVALID_PARAMETER"
    assert raised.value.detail.startswith("Invalid search query")


def test_ctes_and_subqueries_over_allowed_tables_work(engine):
    _, rows = engine.rows(
        "WITH open_invoices AS (SELECT id FROM transaction WHERE status = 'open') "
        "SELECT id FROM open_invoices WHERE id IN (SELECT previousdoc FROM previoustransactionlink)"
    )
    assert rows == [{"id": "101"}]


def test_tables_rebuild_when_the_version_moves():
    state = {"records": {k: list(v) for k, v in RECORDS.items()}, "version": 1}
    engine = SuiteQLEngine(records=lambda: state["records"], version=lambda: state["version"])
    query = "SELECT id FROM item ORDER BY id"
    assert engine.rows(query)[1] == [{"id": "77"}]
    state["records"]["item"].append({"id": "78", "itemId": "ENT-Y"})
    assert engine.rows(query)[1] == [{"id": "77"}]  # same version: the cached answer
    state["version"] = 2
    assert engine.rows(query)[1] == [{"id": "77"}, {"id": "78"}]


def test_a_write_updates_the_rows_of_its_record_without_a_rebuild():
    state = {"records": {k: list(v) for k, v in RECORDS.items()}, "version": 1, "feed": []}

    def changes(since):
        feed = state["feed"]
        if since is None:
            return len(feed), None
        return len(feed), (None if state.get("forgotten") else feed[since:])

    engine = SuiteQLEngine(
        records=lambda: state["records"], version=lambda: state["version"], changes=changes
    )
    assert engine.rows("SELECT count(*) AS n FROM transactionline")[1] == [{"n": 2}]
    payment = {
        "id": "109",
        "externalId": "inpay_new",
        "customer": {"id": "10"},
        "currency": {"id": "1", "refName": "USD"},
        "payment": 5.0,
        "apply": {"items": [{"doc": {"id": "101"}, "amount": 5.0}]},
        "lastModifiedDate": "2025-05-01T00:00:00Z",
    }
    state["records"]["customerpayment"].append(payment)
    state["feed"].append(("customerpayment", payment))
    state["version"] = 2
    row = engine.rows("SELECT subsidiary, foreigntotal FROM transaction WHERE id = '109'")[1]
    assert row == [{"subsidiary": "1", "foreigntotal": 5.0}]
    links = engine.rows("SELECT previousdoc FROM previoustransactionlink WHERE nextdoc = '109'")
    assert links[1] == [{"previousdoc": "101"}]
    changed = {**payment, "payment": 7.0}
    state["records"]["customerpayment"][-1] = changed
    state["feed"].append(("customerpayment", changed))
    state["version"] = 3
    totals = engine.rows("SELECT foreigntotal FROM transaction WHERE id = '109'")[1]
    assert totals == [{"foreigntotal": 7.0}] and engine.rebuilds == 1
    state["forgotten"] = True  # the feed no longer reaches back: a full rebuild
    state["version"] = 4
    assert engine.rows("SELECT count(*) AS n FROM transaction WHERE id = '109'")[1] == [{"n": 1}]
    assert engine.rebuilds == 2
