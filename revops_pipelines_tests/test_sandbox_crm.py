"""The sandbox CRM over real HTTP: OAuth, SOQL paging, errors, reads, updates and upserts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import requests
import uvicorn
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from revops_pipelines.sandbox.crm import API, ERRORS, build_app, id18, salesforce_id
from revops_pipelines.sandbox.faults import FaultMiddleware, FaultSpec
from revops_pipelines.sandbox.serve import running_sandbox
from revops_pipelines.sandbox.state import Credentials, StateStore

ACME = "001Hs00003AbCdEIAV"
DELETED = "001Hs00003AbCdJIAV"


@contextmanager
def serve(app) -> Iterator[str]:
    """Serve an ASGI app on a free localhost port; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def crm(handwritten_state: Path, clock: Clock) -> Iterator[str]:
    store = StateStore.load(handwritten_state)
    app = build_app(
        store,
        credentials=Credentials(crm_client_id="cid", crm_client_secret="secret"),
        faults=FaultSpec(token_ttl_s=60),
        clock=clock,
    )
    with serve(app) as url:
        yield url


def get_token(url: str) -> str:
    answer = httpx.post(
        f"{url}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "cid", "client_secret": "secret"},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


@pytest.fixture
def client(crm: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {get_token(crm)}"}
    with httpx.Client(base_url=crm, headers=headers) as http:
        yield http


def soql(client: httpx.Client, text: str, *, endpoint: str = "query", **headers: str):
    return client.get(f"{API}/{endpoint}", params={"q": text}, headers=headers)


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert isinstance(body, list) and set(body[0]) >= {"message", "errorCode"}
    return body[0]["errorCode"]


def read_jsonl(path: Path) -> list[dict]:
    """The records of one state file as the state directory holds them: file plus journal."""
    return list(StateStore.load(path.parent.parent).collection(path.parent.name, path.stem))


def test_token_endpoint_shape_and_oauth_errors(crm: str):
    answer = httpx.post(
        f"{crm}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "cid", "client_secret": "secret"},
    ).json()
    assert answer["token_type"] == "Bearer"
    assert answer["instance_url"] == crm
    assert isinstance(answer["issued_at"], str) and answer["issued_at"].isdigit()
    assert abs(int(answer["issued_at"]) / 1000 - time.time()) < 60
    wrong_grant = httpx.post(f"{crm}/services/oauth2/token", data={"grant_type": "password"})
    assert wrong_grant.status_code == 400
    assert wrong_grant.json()["error"] == "unsupported_grant_type"
    wrong_secret = httpx.post(
        f"{crm}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "cid", "client_secret": "nope"},
    )
    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    assert "Sforce-Limit-Info" not in wrong_secret.headers


def test_missing_unknown_and_expired_tokens_are_invalid_session(crm: str, clock: Clock):
    for headers in ({}, {"Authorization": "Bearer made-up"}):
        answer = httpx.get(
            f"{crm}{API}/query", params={"q": "SELECT Id FROM Account"}, headers=headers
        )
        assert answer.status_code == 401
        assert answer.json()[0] == {
            "message": "Session expired or invalid",
            "errorCode": "INVALID_SESSION_ID",
            "fields": [],
        }
    token = get_token(crm)
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{crm}{API}/sobjects/Account/{ACME}"
    clock.now += 59
    assert httpx.get(url, headers=headers).status_code == 200
    clock.now += 1
    expired = httpx.get(url, headers=headers)
    assert expired.status_code == 401 and error_code(expired) == "INVALID_SESSION_ID"
    assert httpx.get(url, headers={"Authorization": f"Bearer {get_token(crm)}"}).status_code == 200


def test_query_leaves_out_deleted_rows_and_query_all_keeps_them(client: httpx.Client):
    live = soql(client, "SELECT Id, IsDeleted FROM Account")
    every = soql(client, "SELECT Id, IsDeleted FROM Account", endpoint="queryAll")
    live_ids = [r["Id"] for r in live.json()["records"]]
    every_ids = [r["Id"] for r in every.json()["records"]]
    assert DELETED not in live_ids and DELETED in every_ids
    assert set(every_ids) - set(live_ids) == {DELETED}
    assert live.json()["totalSize"] == len(live_ids) and live.json()["done"] is True
    assert live_ids == sorted(live_ids)


def test_records_carry_attributes_and_only_the_selected_fields(client: httpx.Client):
    answer = soql(client, f"SELECT name, ID FROM account WHERE Id = '{ACME}'").json()
    (record,) = answer["records"]
    assert list(record) == ["attributes", "Name", "Id"]
    assert record["attributes"] == {"type": "Account", "url": f"{API}/sobjects/Account/{ACME}"}
    assert record["Name"] == "Acme Corp"


def test_system_modstamp_filter_compares_datetimes(client: httpx.Client):
    records = soql(
        client,
        "SELECT Id, SystemModstamp FROM Account WHERE SystemModstamp > 2025-02-15T00:00:00Z",
        endpoint="queryAll",
    ).json()["records"]
    assert {r["Id"] for r in records} == {"001Hs00003AbCdFIAV", DELETED}
    # 01:00+01:00 is midnight UTC: the 2025-02-15T00:00:00 account is not later than that.
    records = soql(
        client, "SELECT Id FROM Account WHERE SystemModstamp >= 2025-02-15T01:00:00+01:00"
    ).json()["records"]
    assert {r["Id"] for r in records} == {"001Hs00003AbCdFIAV", "001Hs00003AbCdHIAV"}


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("SELECT COUNT() FROM Account", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name = 'a' OR Name = 'b'", "MALFORMED_QUERY"),
        ("SELECT Id, (SELECT Id FROM Opportunities) FROM Account", "MALFORMED_QUERY"),
        ("SELECT Account.Name FROM Opportunity", "MALFORMED_QUERY"),
        ("SELECT Id FROM Lead", "INVALID_TYPE"),
        ("SELECT Id, Shoe_Size__c FROM Account", "INVALID_FIELD"),
    ],
)
def test_query_errors(client: httpx.Client, text: str, code: str):
    answer = soql(client, text)
    assert answer.status_code == 400
    assert error_code(answer) == code
    assert answer.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_unknown_locator_and_unknown_records(client: httpx.Client):
    stale = client.get(f"{API}/query/01g000000000099AAA-200")
    assert stale.status_code == 400 and error_code(stale) == "INVALID_QUERY_LOCATOR"
    for path in ("sobjects/Account/001Hs00003AbCdZZZZ", f"sobjects/Lead/{ACME}"):
        missing = client.get(f"{API}/{path}")
        assert missing.status_code == 404
        assert error_code(missing) == "NOT_FOUND"
    assert client.get(f"{API}/sobjects/Account/{DELETED}").status_code == 404


def test_limit_info_counts_api_calls(client: httpx.Client):
    first = client.get(f"{API}/sobjects/Account/{ACME}")
    second = client.get(f"{API}/sobjects/Account/{ACME}")
    used = [
        int(r.headers["Sforce-Limit-Info"].split("=")[1].split("/")[0]) for r in (first, second)
    ]
    assert used[1] == used[0] + 1
    body = first.json()
    assert body["attributes"]["type"] == "Account" and body["Billing_Customer_Id__c"]


def add_accounts(state_dir: Path, count: int) -> set[str]:
    path = state_dir / "crm" / "Account.jsonl"
    ids = set()
    with path.open("a", encoding="utf-8") as handle:
        for number in range(count):
            record_id = salesforce_id("001", 9_000_000 + number)
            ids.add(record_id)
            record = {
                "Id": record_id,
                "Name": f"Generated {number}",
                "IsDeleted": number % 10 == 0,
                "SystemModstamp": "2025-03-01T00:00:00.000+0000",
            }
            handle.write(json.dumps(record) + "\n")
    return ids


def test_paging_with_next_records_url_returns_every_record_once(
    handwritten_state: Path, clock: Clock
):
    add_accounts(handwritten_state, 450)
    store = StateStore.load(handwritten_state)
    expected = {r["Id"] for r in store.collection("crm", "Account").records}
    app = build_app(store, credentials=Credentials(), faults=FaultSpec(), clock=clock)
    with serve(app) as url, httpx.Client(base_url=url) as http:
        token = http.post(
            "/services/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": "a", "client_secret": "b"},
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "Sforce-Query-Options": "batchSize=200"}
        page = http.get(
            f"{API}/queryAll", params={"q": "SELECT Id FROM Account"}, headers=headers
        ).json()
        seen, sizes = [], []
        while True:
            sizes.append(len(page["records"]))
            seen.extend(r["Id"] for r in page["records"])
            assert page["totalSize"] == len(expected)
            if page["done"]:
                assert "nextRecordsUrl" not in page
                break
            page = http.get(page["nextRecordsUrl"], headers=headers).json()
        assert len(sizes) == 3 and max(sizes) <= 200
        assert len(seen) == len(set(seen)) and set(seen) == expected
        # A finished cursor is gone.
        gone = http.get(f"{API}/query/01g000000000001AAA-200", headers=headers)
        assert gone.status_code == 400


class RewriteToHttp(HTTPAdapter):
    """simple-salesforce always builds https:// URLs; the sandbox speaks plain HTTP."""

    def send(self, request, **kwargs):
        request.url = "http://" + request.url.removeprefix("https://")
        return super().send(request, **kwargs)


def test_simple_salesforce_pages_reads_and_writes(handwritten_state: Path, clock: Clock):
    generated = add_accounts(handwritten_state, 450)
    store = StateStore.load(handwritten_state)
    app = build_app(store, credentials=Credentials(), faults=FaultSpec(), clock=clock)
    with serve(app) as url:
        token = get_token_any(url)
        session = requests.Session()
        session.mount("https://", RewriteToHttp())
        sf = Salesforce(instance_url=url, session_id=token, session=session)
        result = sf.query_all(
            "SELECT Id, Name FROM Account", headers={"Sforce-Query-Options": "batchSize=200"}
        )
        ids = [r["Id"] for r in result["records"]]
        live_generated = {
            i for i in generated if not store.collection("crm", "Account").get(i)["IsDeleted"]
        }
        assert len(ids) == len(set(ids)) == result["totalSize"]
        assert live_generated <= set(ids) and DELETED not in ids
        assert sf.api_usage["api-usage"].used >= 3
        assert sf.Account.get(ACME)["Name"] == "Acme Corp"
        with pytest.raises(SalesforceResourceNotFound):
            sf.Account.get("001Hs00003AbCdZZZZ")
        with pytest.raises(SalesforceMalformedRequest):
            sf.query("SELECT COUNT() FROM Account")
        assert sf.Account.upsert("Billing_Customer_Id__c/cus_New0001", {"Name": "New Co"}) == 201
        assert sf.Account.upsert("Billing_Customer_Id__c/cus_New0001", {"Name": "New Co 2"}) == 200
        assert sf.Account.update(ACME, {"Name": "Acme Corporation"}) == 204
    accounts = {r["Id"]: r for r in read_jsonl(handwritten_state / "crm" / "Account.jsonl")}
    assert accounts[ACME]["Name"] == "Acme Corporation"
    (created,) = [r for r in accounts.values() if r.get("Billing_Customer_Id__c") == "cus_New0001"]
    assert created["Name"] == "New Co 2"


def get_token_any(url: str) -> str:
    return httpx.post(
        f"{url}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
    ).json()["access_token"]


def test_update_bumps_modstamp_persists_and_refuses_bad_fields(
    client: httpx.Client, handwritten_state: Path
):
    url = f"{API}/sobjects/Account/{ACME}"
    before = client.get(url).json()
    answer = client.patch(url, json={"billingcity": "Oakland"})
    assert answer.status_code == 204 and answer.content == b""
    after = client.get(url).json()
    assert after["BillingCity"] == "Oakland" and "billingcity" not in after
    assert after["SystemModstamp"] > before["SystemModstamp"]
    assert after["LastModifiedDate"] == after["SystemModstamp"]
    assert after["CreatedDate"] == before["CreatedDate"]
    on_disk = {r["Id"]: r for r in read_jsonl(handwritten_state / "crm" / "Account.jsonl")}
    assert on_disk[ACME]["BillingCity"] == "Oakland"
    changed = soql(
        client, "SELECT Id FROM Account WHERE SystemModstamp > 2026-01-01T00:00:00Z"
    ).json()["records"]
    assert [r["Id"] for r in changed] == [ACME]
    unknown = client.patch(url, json={"Shoe_Size__c": 44})
    assert unknown.status_code == 400 and error_code(unknown) == "INVALID_FIELD"
    read_only = client.patch(url, json={"SystemModstamp": "2020-01-01T00:00:00.000+0000"})
    assert read_only.status_code == 400
    assert error_code(read_only) == "INVALID_FIELD_FOR_INSERT_UPDATE"
    missing = client.patch(f"{API}/sobjects/Account/001Hs00003AbCdZZZZ", json={"Name": "x"})
    assert missing.status_code == 404


def test_upsert_creates_then_updates_and_300_on_several_matches(
    client: httpx.Client, handwritten_state: Path
):
    url = f"{API}/sobjects/Opportunity/Billing_Subscription_Id__c/sub_NEW1"
    created = client.patch(url, json={"Name": "New deal", "StageName": "Prospecting"})
    assert created.status_code == 201
    body = created.json()
    assert body["created"] is True and body["success"] is True and body["errors"] == []
    assert body["id"].startswith("006") and len(body["id"]) == 18
    again = client.patch(url, json={"StageName": "Closed Won"})
    assert again.status_code == 200 and again.json() == {**body, "created": False}
    record = client.get(f"{API}/sobjects/Opportunity/{body['id']}").json()
    assert record["StageName"] == "Closed Won" and record["Name"] == "New deal"
    assert record["Billing_Subscription_Id__c"] == "sub_NEW1" and record["IsDeleted"] is False
    on_disk = [
        r
        for r in read_jsonl(handwritten_state / "crm" / "Opportunity.jsonl")
        if r.get("Billing_Subscription_Id__c") == "sub_NEW1"
    ]
    assert len(on_disk) == 1 and on_disk[0]["Id"] == body["id"]
    # Two opportunities of Acme share an AccountId, so it is no unique external id.
    several = client.patch(f"{API}/sobjects/Opportunity/AccountId/{ACME}", json={"Name": "x"})
    assert several.status_code == 300
    assert len(several.json()) == 2
    unknown_field = client.patch(f"{API}/sobjects/Opportunity/No_Such__c/1", json={})
    assert unknown_field.status_code == 404


def test_rate_limited_answer_is_request_limit_exceeded(handwritten_state: Path):
    store = StateStore.load(handwritten_state)
    app = FaultMiddleware(
        build_app(store, credentials=Credentials(), faults=FaultSpec()),
        system_errors=ERRORS,
        rate_limit=1.0,
        faults=FaultSpec(),
        seed=1,
    )
    with serve(app) as url:
        answers = [httpx.get(f"{url}{API}/sobjects/Account/{ACME}") for _ in range(3)]
    limited = [a for a in answers if a.status_code == 403]
    assert limited and error_code(limited[0]) == "REQUEST_LIMIT_EXCEEDED"
    assert float(limited[0].headers["Retry-After"]) > 0


def test_salesforce_ids_have_the_checksum_suffix():
    assert id18("001Hs00003AbCdE") == "001Hs00003AbCdEIAV"
    assert salesforce_id("001", 1) == id18("001Sb0000000001")
    assert len({salesforce_id("006", n) for n in range(1, 500)}) == 499


def test_served_by_running_sandbox_with_a_token_ttl_fault(handwritten_state: Path):
    # Long enough that a loaded machine answers the first query before the token expires.
    ttl_s = 3.0
    with running_sandbox(handwritten_state, faults=f"crm.token_ttl_s={ttl_s}", seed=3) as urls:
        issued = time.monotonic()
        token = get_token_any(urls.crm)
        received = time.monotonic()
        url = f"{urls.crm}{API}/query"
        headers = {"Authorization": f"Bearer {token}"}
        fresh = httpx.get(url, params={"q": "SELECT Id FROM Product2"}, headers=headers)
        assert fresh.status_code == 200 and fresh.json()["totalSize"] == 2
        assert "Sforce-Limit-Info" in fresh.headers
        assert time.monotonic() - issued < ttl_s
        time.sleep(max(0.0, received + ttl_s + 0.2 - time.monotonic()))
        stale = httpx.get(url, params={"q": "SELECT Id FROM Product2"}, headers=headers)
        assert stale.status_code == 401 and error_code(stale) == "INVALID_SESSION_ID"


def test_injected_server_errors_use_salesforce_codes(handwritten_state: Path):
    store = StateStore.load(handwritten_state)
    app = FaultMiddleware(
        build_app(store, credentials=Credentials(), faults=FaultSpec()),
        system_errors=ERRORS,
        rate_limit=None,
        faults=FaultSpec(error_rate=1.0),
        seed=5,
    )
    with serve(app) as url:
        answers = [httpx.get(f"{url}{API}/sobjects/Account/{ACME}") for _ in range(6)]
    codes = {(a.status_code, error_code(a)) for a in answers}
    assert codes <= {(500, "UNKNOWN_EXCEPTION"), (503, "SERVER_UNAVAILABLE")} and codes
