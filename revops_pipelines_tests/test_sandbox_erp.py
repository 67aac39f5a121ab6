"""The sandbox ERP over real HTTP: SuiteQL paging and checks, records, writes, payments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from revops_pipelines.sandbox.erp import ERRORS, build_app
from revops_pipelines.sandbox.faults import FaultMiddleware, FaultSpec
from revops_pipelines.sandbox.serve import running_sandbox
from revops_pipelines.sandbox.state import Credentials, StateStore
from revops_pipelines_tests.test_sandbox_crm import serve

SUITEQL = "/services/rest/query/v1/suiteql"
RECORDS = "/services/rest/record/v1"


@pytest.fixture
def erp(sandbox) -> Iterator[httpx.Client]:
    headers = {"Authorization": "Bearer any-token", "Prefer": "transient"}
    with httpx.Client(base_url=sandbox.erp, headers=headers) as client:
        yield client


def suiteql(client: httpx.Client, query: str, **params) -> httpx.Response:
    return client.post(SUITEQL, params=params, json={"q": query})


def detail(response: httpx.Response) -> dict:
    body = response.json()
    assert body["status"] == response.status_code and body["title"]
    return body["o:errorDetails"][0]


def read_jsonl(path: Path) -> dict[str, dict]:
    """The records of one state file as the state directory holds them: file plus journal."""
    store = StateStore.load(path.parent.parent)
    return {r["id"]: r for r in store.collection(path.parent.name, path.stem)}


def location_id(response: httpx.Response, record_type: str) -> str:
    assert response.status_code == 204, response.text
    location = response.headers["Location"]
    assert f"{RECORDS}/{record_type}/" in location and location.startswith("http://")
    return location.rsplit("/", 1)[1]


def all_pages(client: httpx.Client, query: str, *, limit: int) -> tuple[list[dict], int]:
    rows, offset, requests = [], 0, 0
    while True:
        body = suiteql(client, query, limit=limit, offset=offset).json()
        requests += 1
        rows.extend(body["items"])
        assert body["count"] == len(body["items"]) <= limit
        if not body["hasMore"]:
            assert not [link for link in body["links"] if link["rel"] == "next"]
            return rows, requests
        (next_link,) = [link for link in body["links"] if link["rel"] == "next"]
        assert f"offset={offset + limit}" in next_link["href"]
        offset += limit


def test_suiteql_pages_return_every_row_exactly_once(erp: httpx.Client, handwritten_state: Path):
    invoices = read_jsonl(handwritten_state / "erp" / "invoice.jsonl")
    payments = read_jsonl(handwritten_state / "erp" / "customerpayment.jsonl")
    # No ORDER BY on purpose: paging must still cover each row once.
    rows, requests = all_pages(erp, "SELECT id, type FROM transaction", limit=2)
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) and requests > 2
    assert {i for i, r in zip(ids, rows, strict=True) if r["type"] == "CustInvc"} == set(invoices)
    assert {i for i, r in zip(ids, rows, strict=True) if r["type"] == "CustPymt"} == set(payments)
    first = suiteql(erp, "SELECT id FROM transaction", limit=2).json()
    assert first["totalResults"] == len(ids) and first["offset"] == 0
    assert all(item["links"] == [] for item in first["items"])


def test_suiteql_rows_types_filters_and_joins(erp: httpx.Client):
    body = suiteql(
        erp,
        "SELECT id, foreigntotal, status, currency FROM transaction WHERE type = 'CustInvc' "
        "AND lastmodifieddate > TO_TIMESTAMP('2025-01-05 00:00:00', 'YYYY-MM-DD HH24:MI:SS') "
        "AND id > '5679' ORDER BY id",
    ).json()
    rows = {row["id"]: row for row in body["items"]}
    assert "5678" not in rows and "5679" not in rows and "5681" in rows
    assert rows["5681"]["foreigntotal"] == 38500 and isinstance(rows["5681"]["id"], str)
    assert rows["5682"]["status"] == "voided"
    lines = suiteql(
        erp,
        "SELECT tl.transaction, tl.foreignamount, t.externalid FROM transactionline tl "
        "JOIN transaction t ON t.id = tl.transaction WHERE t.id IN ('5678', '5681') ORDER BY tl.id",
    ).json()["items"]
    assert [line["transaction"] for line in lines] == ["5678", "5681"]
    assert lines[0]["externalid"] == "in_1QabcAcme0001" and lines[0]["foreignamount"] == 490.0
    links = suiteql(erp, "SELECT * FROM previoustransactionlink WHERE nextdoc = '5720'").json()[
        "items"
    ]
    assert links[0]["previousdoc"] == "5683" and links[0]["linktype"] == "CreditMemo"


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM transaction",
        "UPDATE customer SET email = 'x'",
        "DROP TABLE customer",
        "SELECT 1; DELETE FROM transaction",
        "SELECT * FROM read_csv('customer.jsonl')",
        "SELECT * FROM account",
        "SELECT nosuchcolumn FROM customer",
    ],
)
def test_suiteql_refuses_what_is_not_a_select_over_its_tables(erp: httpx.Client, query: str):
    answer = suiteql(erp, query)
    assert answer.status_code == 400
    assert detail(answer)["o:errorCode"] == "INVALID_PARAMETER"
    # Nothing was changed or dropped.
    assert suiteql(erp, "SELECT COUNT(*) AS n FROM transaction").json()["items"][0]["n"] > 0


def test_suiteql_request_rules(erp: httpx.Client):
    query = {"q": "SELECT id FROM customer"}
    no_prefer = erp.post(SUITEQL, json=query, headers={"Prefer": ""})
    assert no_prefer.status_code == 400
    assert erp.post(SUITEQL, json=query, params={"limit": 1001}).status_code == 400
    assert erp.post(SUITEQL, json=query, params={"limit": 10, "offset": 5}).status_code == 400
    assert erp.post(SUITEQL, content=b"not json").status_code == 400


def test_auth(sandbox, handwritten_state: Path):
    missing = httpx.post(f"{sandbox.erp}{SUITEQL}", json={"q": "SELECT id FROM item"})
    assert missing.status_code == 401
    assert detail(missing)["o:errorCode"] == "INVALID_LOGIN"
    with running_sandbox(handwritten_state, credentials=Credentials(erp_token="right")) as urls:
        url = f"{urls.erp}{RECORDS}/item/77"
        assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer right"}).status_code == 200


def test_record_list_pages_ids_and_record_get(erp: httpx.Client, handwritten_state: Path):
    expected = set(read_jsonl(handwritten_state / "erp" / "invoice.jsonl"))
    seen, offset = [], 0
    while True:
        body = erp.get(f"{RECORDS}/invoice", params={"limit": 4, "offset": offset}).json()
        assert all(set(item) == {"id", "links"} for item in body["items"])
        seen.extend(item["id"] for item in body["items"])
        if not body["hasMore"]:
            break
        offset += 4
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))
    record = erp.get(f"{RECORDS}/invoice/5678").json()
    assert record["externalId"] == "in_1QabcAcme0001" and record["links"][0]["rel"] == "self"
    assert erp.get(f"{RECORDS}/invoice/eid:in_1QabcAcme0001").json()["id"] == "5678"
    for path in ("invoice/999999", "invoice/eid:in_nope", "nosuchtype/1"):
        missing = erp.get(f"{RECORDS}/{path}")
        assert missing.status_code == 404, path
        assert detail(missing)["o:errorCode"]


def test_put_by_external_id_twice_keeps_one_record(erp: httpx.Client, handwritten_state: Path):
    body = {
        "companyName": "Nordlicht AB",
        "email": "ap@nordlicht.example",
        "subsidiary": {"id": "3"},
        "currency": {"id": "3", "refName": "EUR"},
    }
    first = location_id(erp.put(f"{RECORDS}/customer/eid:cus_Nord0001", json=body), "customer")
    second = location_id(
        erp.put(
            f"{RECORDS}/customer/eid:cus_Nord0001", json={"email": "billing@nordlicht.example"}
        ),
        "customer",
    )
    assert first == second
    on_disk = [
        r
        for r in read_jsonl(handwritten_state / "erp" / "customer.jsonl").values()
        if r.get("externalId") == "cus_Nord0001"
    ]
    assert len(on_disk) == 1
    assert on_disk[0]["email"] == "billing@nordlicht.example"
    assert on_disk[0]["companyName"] == "Nordlicht AB"
    rows = suiteql(
        erp, "SELECT id, email, lastmodifieddate FROM customer WHERE externalid = 'cus_Nord0001'"
    ).json()["items"]
    assert rows[0]["id"] == first and rows[0]["email"] == "billing@nordlicht.example"
    assert rows[0]["lastmodifieddate"] > "2026-01-01T00:00:00Z"


def test_new_transactions_share_one_id_space(erp: httpx.Client):
    highest = max(
        int(row["id"]) for row in suiteql(erp, "SELECT id FROM transaction").json()["items"]
    )
    invoice = {
        "externalId": "in_New0001",
        "entity": {"id": "1234"},
        "subsidiary": {"id": "1"},
        "currency": {"id": "1", "refName": "USD"},
        "taxTotal": 10.0,
        "item": {"items": [{"item": {"id": "77"}, "quantity": 2, "rate": 45.0, "amount": 90.0}]},
    }
    new_id = location_id(erp.post(f"{RECORDS}/invoice", json=invoice), "invoice")
    assert int(new_id) == highest + 1
    created = erp.get(f"{RECORDS}/invoice/{new_id}").json()
    assert created["total"] == 100.0 and created["amountRemaining"] == 100.0
    assert created["status"]["id"] == "open"
    duplicate = erp.post(f"{RECORDS}/invoice", json=invoice)
    assert duplicate.status_code == 400


def test_payments_lower_the_invoice_and_over_application_is_refused(
    erp: httpx.Client, handwritten_state: Path
):
    invoice = {
        "externalId": "in_Pay0001",
        "entity": {"id": "1234"},
        "currency": {"id": "1", "refName": "USD"},
        "total": 100.0,
    }
    invoice_id = location_id(erp.post(f"{RECORDS}/invoice", json=invoice), "invoice")

    def pay(external_id: str, amount: float) -> httpx.Response:
        return erp.put(
            f"{RECORDS}/customerpayment/eid:{external_id}",
            json={
                "customer": {"id": "1234"},
                "currency": {"id": "1", "refName": "USD"},
                "payment": amount,
                "apply": {"items": [{"doc": {"id": invoice_id}, "apply": True, "amount": amount}]},
            },
        )

    first = location_id(pay("inpay_A", 60.0), "customerpayment")
    assert erp.get(f"{RECORDS}/invoice/{invoice_id}").json()["amountRemaining"] == 40.0
    refused = pay("inpay_B", 40.01)
    assert refused.status_code == 400
    error = detail(refused)
    assert error["o:errorCode"] == "USER_ERROR" and invoice_id in error["detail"]
    assert erp.get(f"{RECORDS}/customerpayment/eid:inpay_B").status_code == 404
    # Re-sending the first payment with a new amount replaces its application, not adds to it.
    assert location_id(pay("inpay_A", 70.0), "customerpayment") == first
    assert erp.get(f"{RECORDS}/invoice/{invoice_id}").json()["amountRemaining"] == 30.0
    location_id(pay("inpay_C", 30.0), "customerpayment")
    paid = erp.get(f"{RECORDS}/invoice/{invoice_id}").json()
    assert paid["amountRemaining"] == 0.0 and paid["status"]["id"] == "paidInFull"
    on_disk = read_jsonl(handwritten_state / "erp" / "invoice.jsonl")[invoice_id]
    assert on_disk["status"]["id"] == "paidInFull"
    rows = suiteql(
        erp,
        f"SELECT previousdoc, nextdoc, foreignamount FROM previoustransactionlink "
        f"WHERE previousdoc = '{invoice_id}' ORDER BY foreignamount",
    ).json()["items"]
    assert [row["foreignamount"] for row in rows] == [30.0, 70.0]
    status = suiteql(
        erp, f"SELECT status, foreignamountremaining FROM transaction WHERE id = '{invoice_id}'"
    ).json()["items"][0]
    assert status == {"status": "paidInFull", "foreignamountremaining": 0.0, "links": []}


def test_patch_updates_and_unknown_id(erp: httpx.Client):
    answer = erp.patch(f"{RECORDS}/customer/1234", json={"email": "new@acme.example"})
    assert location_id(answer, "customer") == "1234"
    assert erp.get(f"{RECORDS}/customer/1234").json()["email"] == "new@acme.example"
    assert erp.patch(f"{RECORDS}/customer/999999", json={"email": "x"}).status_code == 404


def test_too_many_requests_is_429_with_retry_after(handwritten_state: Path):
    store = StateStore.load(handwritten_state)
    busy = FaultMiddleware(
        build_app(store, credentials=Credentials(), faults=FaultSpec()),
        system_errors=ERRORS,
        rate_limit=None,
        faults=FaultSpec(),
        seed=1,
        max_in_flight=0,
    )
    limited = FaultMiddleware(
        build_app(store, credentials=Credentials(), faults=FaultSpec()),
        system_errors=ERRORS,
        rate_limit=1.0,
        faults=FaultSpec(),
        seed=1,
    )
    headers = {"Authorization": "Bearer t"}
    with serve(busy) as busy_url, serve(limited) as limited_url:
        answer = httpx.get(f"{busy_url}{RECORDS}/item/77", headers=headers)
        assert answer.status_code == 429 and float(answer.headers["Retry-After"]) > 0
        assert detail(answer)["o:errorCode"] == "CONCURRENCY_LIMIT_EXCEEDED"
        statuses = [
            httpx.get(f"{limited_url}{RECORDS}/item/77", headers=headers).status_code
            for _ in range(3)
        ]
    assert statuses[0] == 200 and 429 in statuses
