"""Every sandbox refusal is in its system's own shape, over real HTTP; hostile input never a 5xx.

Includes a hypothesis fuzz over request parameters and bodies of the three systems, and the
bounded SuiteQL: a slow query is stopped at its limit while record reads go on answering.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from revops_pipelines.sandbox import erp
from revops_pipelines.sandbox.faults import FaultMiddleware, FaultSpec
from revops_pipelines.sandbox.serve import SandboxServer, SandboxUrls, build_apps, running_sandbox
from revops_pipelines.sandbox.state import Credentials, StateStore
from revops_pipelines_tests.conftest import HANDWRITTEN_STATE

CRM_API = "/services/data/v59.0"
SUITEQL = "/services/rest/query/v1/suiteql"
RECORDS = "/services/rest/record/v1"


def assert_crm_error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert isinstance(body, list) and body, response.text
    assert set(body[0]) >= {"message", "errorCode", "fields"}
    return body[0]


def assert_token_error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) >= {"error", "error_description"}, response.text
    return body


def assert_billing_error(response: httpx.Response) -> dict[str, Any]:
    error = response.json()["error"]
    assert error["type"] in ("invalid_request_error", "idempotency_error"), response.text
    assert isinstance(error["message"], str)
    return error


def assert_erp_error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["status"] == response.status_code and body["title"], response.text
    detail = body["o:errorDetails"][0]
    assert isinstance(detail["detail"], str) and isinstance(detail["o:errorCode"], str)
    return detail


def assert_refusal(system: str, response: httpx.Response) -> dict[str, Any]:
    """A 4xx in the system's shape, and the connection kept for the next request."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers.get("connection", "").lower() != "close"
    assert response.headers["content-type"].startswith("application/json")
    if system == "crm":
        if response.request.url.path.endswith("/oauth2/token"):
            return assert_token_error(response)
        return assert_crm_error(response)
    if system == "billing":
        return assert_billing_error(response)
    return assert_erp_error(response)


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxUrls]:
    state = tmp_path_factory.mktemp("refusals") / "state"
    import shutil

    shutil.copytree(HANDWRITTEN_STATE, state)
    with running_sandbox(state, seed=3) as served:
        yield served


@pytest.fixture(scope="module")
def clients(urls: SandboxUrls) -> Iterator[dict[str, httpx.Client]]:
    token = httpx.post(
        f"{urls.crm}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "fuzz", "client_secret": "s"},
    ).json()["access_token"]
    made = {
        "crm": httpx.Client(base_url=urls.crm, headers={"Authorization": f"Bearer {token}"}),
        "billing": httpx.Client(
            base_url=urls.billing, headers={"Authorization": "Bearer sk_test_fuzz"}
        ),
        "erp": httpx.Client(
            base_url=urls.erp, headers={"Authorization": "Bearer t", "Prefer": "transient"}
        ),
    }
    yield made
    for client in made.values():
        client.close()


def _soql(where: str) -> dict[str, str]:
    return {"q": f"SELECT Id FROM Account WHERE {where}"}


# (system, method, path, keyword arguments, the error code expected)
REFUSALS = [
    # Why 6: out-of-range SOQL datetimes were a text/plain 500.
    ("crm", "GET", f"{CRM_API}/query", {"params": _soql("SystemModstamp > 2025-13-45T99:99:99Z")}),
    ("crm", "GET", f"{CRM_API}/query", {"params": _soql("SystemModstamp > 2025-02-30T10:00:00Z")}),
    # Why 6: Unicode digits, which str.isdigit() takes and int() refuses (or takes silently).
    ("crm", "GET", f"{CRM_API}/query/01g000000000001AAA-²", {}),
    ("erp", "POST", SUITEQL, {"params": {"limit": "²"}, "json": {"q": "SELECT id FROM item"}}),
    ("erp", "GET", f"{RECORDS}/item", {"params": {"limit": "10", "offset": "١٠"}}),
    ("billing", "GET", "/v1/customers", {"params": {"limit": "١٠"}}),
    ("billing", "GET", "/v1/customers", {"params": {"created[gte]": "1_000"}}),
    # Why 6: a form body that is not UTF-8; an ERP write whose total is no number.
    ("billing", "POST", "/v1/customers", {"content": b"name=\xff\xfe"}),
    ("erp", "POST", f"{RECORDS}/invoice", {"json": {"externalId": "in_x", "total": "abc"}}),
    ("erp", "PATCH", f"{RECORDS}/invoice/5678", {"json": {"total": "abc"}}),
    ("crm", "PATCH", f"{CRM_API}/sobjects/Account/001Hs00003AbCdEIAV", {"json": {"Name": 5}}),
    # Why 7: a quoted datetime literal was compared as text and answered 0 rows.
    (
        "crm",
        "GET",
        f"{CRM_API}/query",
        {"params": _soql("SystemModstamp >= '2026-10-31T22:59:59Z'")},
    ),
]


@pytest.mark.parametrize(
    ("system", "method", "path", "options"),
    REFUSALS,
    ids=[f"{r[0]}-{r[1]}-{r[2].rsplit('/', 1)[-1]}-{n}" for n, r in enumerate(REFUSALS)],
)
def test_hostile_requests_are_refused_in_the_systems_shape(
    clients: dict[str, httpx.Client], system: str, method: str, path: str, options: dict
) -> None:
    response = clients[system].request(method, path, **options)
    assert_refusal(system, response)


def test_a_batch_size_hint_in_unicode_digits_is_ignored(clients: dict[str, httpx.Client]) -> None:
    response = clients["crm"].get(
        f"{CRM_API}/query",
        params={"q": "SELECT Id FROM Account"},
        # Headers arrive as Latin-1, where byte B2 is "²".
        headers={"Sforce-Query-Options": "batchSize=²".encode("latin-1")},
    )
    assert response.status_code == 200 and response.json()["records"]


def test_quoted_datetime_is_refused_by_name(clients: dict[str, httpx.Client]) -> None:
    refusal = assert_crm_error(
        clients["crm"].get(
            f"{CRM_API}/query", params=_soql("SystemModstamp >= '2026-10-31T22:59:59Z'")
        )
    )
    assert refusal["errorCode"] == "INVALID_FIELD"
    assert "should not be enclosed in quotes" in refusal["message"]
    unquoted = clients["crm"].get(
        f"{CRM_API}/query", params=_soql("SystemModstamp >= 2000-01-01T00:00:00Z")
    )
    assert unquoted.status_code == 200 and unquoted.json()["totalSize"] > 0


def test_an_unexpected_error_is_a_500_in_the_systems_shape_and_logged(
    handwritten_state: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = StateStore.load(handwritten_state)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    apps = build_apps(
        store,
        credentials=Credentials(),
        faults=dict.fromkeys(("crm", "billing", "erp"), FaultSpec()),
        rate_limits={},
        seed=1,
    )
    # Broken once the apps are built (they read the store as they start), for every request.
    store.collection = broken  # type: ignore[method-assign]
    server = SandboxServer(apps)
    urls = server.start()
    try:
        token = httpx.post(
            f"{urls.crm}/services/oauth2/token",
            data={"grant_type": "client_credentials", "client_id": "c", "client_secret": "s"},
        ).json()["access_token"]
        answers = {
            "crm": httpx.get(
                f"{urls.crm}{CRM_API}/sobjects/Account/001Hs00003AbCdEIAV",
                headers={"Authorization": f"Bearer {token}"},
            ),
            "billing": httpx.get(
                f"{urls.billing}/v1/customers/cus_x", headers={"Authorization": "Bearer sk_test_x"}
            ),
            "erp": httpx.get(f"{urls.erp}{RECORDS}/item/77", headers={"Authorization": "Bearer t"}),
        }
    finally:
        server.stop()
    assert {system: answer.status_code for system, answer in answers.items()} == dict.fromkeys(
        answers, 500
    )
    assert assert_crm_error(answers["crm"])["errorCode"] == "UNKNOWN_EXCEPTION"
    assert answers["billing"].json()["error"]["type"] == "api_error"
    assert assert_erp_error(answers["erp"])["o:errorCode"] == "UNEXPECTED_ERROR"
    logged = [r.getMessage() for r in caplog.records if r.name == "revops_pipelines.sandbox"]
    assert any("billing sandbox failed on GET /v1/customers/cus_x" in line for line in logged)
    assert len(logged) == 3


# ------------------------------------------------------------------ fuzz

_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=24
) | st.sampled_from(["", "0", "-1", "10", "²", "١٢", " 5", "1_0", "9" * 30, "null", "'", "%"])
# Keys the write handlers compute with, so bodies reach the arithmetic, not only the parser.
_KEYS = _TEXT | st.sampled_from(
    [
        "total", "subtotal", "taxTotal", "amountRemaining", "payment", "apply", "items", "item",
        "amount", "doc", "id", "externalId", "status", "entity", "Name", "Amount", "IsDeleted",
        "Billing_Customer_Id__c", "metadata", "lastModifiedDate",
    ]
)  # fmt: skip
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=10,
)
_PARAMS = st.dictionaries(
    st.sampled_from(
        [
            "limit", "offset", "q", "starting_after", "ending_before", "created", "created[gte]",
            "created[lt]", "status", "customer", "active", "types[]", "expand[]", "x",
        ]
    ) | _TEXT,
    _TEXT,
    max_size=4,
)  # fmt: skip
_SOQL = st.builds(
    lambda fields, obj, where, tail: f"SELECT {fields} FROM {obj}{where}{tail}",
    st.sampled_from(["Id", "Id, Name", "Amount", "COUNT()", "Id,", "*"]),
    st.sampled_from(["Account", "Opportunity", "Contract", "Nope", ""]),
    st.sampled_from(["", " WHERE "]).flatmap(
        lambda w: (
            st.just("")
            if not w
            else st.builds(
                lambda f, op, lit: f"{w}{f} {op} {lit}",
                st.sampled_from(
                    ["SystemModstamp", "CloseDate", "Amount", "Name", "IsDeleted", "Zz"]
                ),
                st.sampled_from(["=", ">", "<=", "!=", "IN", "LIKE"]),
                _TEXT | st.sampled_from(["2025-01-01T00:00:00Z", "2025-99-01", "(1,2)", "true"]),
            )
        )
    ),
    st.sampled_from(["", " ORDER BY Name DESC", " LIMIT 5", " LIMIT ²", " LIMIT -1"]),
)
_SUITEQL = st.builds(
    lambda cols, table, where: f"SELECT {cols} FROM {table}{where}",
    st.sampled_from(["*", "id", "id, foreigntotal", "count(*)", "1"]),
    st.sampled_from(["transaction", "customer", "item", "nope", "transactionline"]),
    st.sampled_from(["", " WHERE id > ", " WHERE foreigntotal > ", " ORDER BY "]).flatmap(
        lambda w: st.just(w) if not w else _TEXT.map(lambda t: w + t)
    ),
)


def _crm_request() -> st.SearchStrategy[tuple[str, str, dict]]:
    query = st.tuples(
        st.sampled_from(["query", "queryAll"]),
        _SOQL | _TEXT,
        st.sampled_from(["", "batchSize=200", "batchSize=²", "batchSize=-5", "x"]),
    ).map(
        lambda t: (
            "GET",
            f"{CRM_API}/{t[0]}",
            {"params": {"q": t[1]}, "headers": {"Sforce-Query-Options": t[2].encode("latin-1")}},
        )
    )
    more = _TEXT.map(lambda t: ("GET", f"{CRM_API}/query/{t}", {}))
    sobject = st.tuples(
        st.sampled_from(["GET", "PATCH"]),
        st.sampled_from(["Account", "Opportunity", "Nope"]),
        st.sampled_from(["001Hs00003AbCdEIAV", "006Hs00001OppAcmeAA", "x"]) | _TEXT,
        st.binary(max_size=40) | _JSON.map(lambda j: json.dumps(j).encode()),
    ).map(lambda t: (t[0], f"{CRM_API}/sobjects/{t[1]}/{t[2]}", {"content": t[3]}))
    upsert = st.tuples(
        st.sampled_from(["Account", "Opportunity"]),
        st.sampled_from(["Billing_Customer_Id__c", "Id", "Nope"]),
        _TEXT,
        _JSON.map(lambda j: json.dumps(j).encode()),
    ).map(lambda t: ("PATCH", f"{CRM_API}/sobjects/{t[0]}/{t[1]}/{t[2]}", {"content": t[3]}))
    token = st.binary(max_size=60).map(
        lambda body: ("POST", "/services/oauth2/token", {"content": body, "auth": False})
    )
    return query | more | sobject | upsert | token


def _billing_request() -> st.SearchStrategy[tuple[str, str, dict]]:
    resource = st.sampled_from(
        ["customers", "invoices", "subscriptions", "events", "prices", "nope"]
    )
    listing = st.tuples(resource, _PARAMS).map(lambda t: ("GET", f"/v1/{t[0]}", {"params": t[1]}))
    retrieve = st.tuples(resource, _TEXT).map(lambda t: ("GET", f"/v1/{t[0]}/{t[1]}", {}))
    form = st.binary(max_size=60) | st.lists(st.tuples(_TEXT, _TEXT), max_size=4).map(
        lambda pairs: httpx.QueryParams(pairs).__str__().encode()
    )
    write = st.tuples(
        st.sampled_from(
            ["/v1/customers", "/v1/customers/cus_R1a2B3c4D5e6F7", "/v1/subscriptions/x"]
        ),
        form,
        st.none() | _TEXT,
    ).map(
        lambda t: (
            "POST",
            t[0],
            {
                "content": t[1],
                "headers": {"Content-Type": "application/x-www-form-urlencoded"}
                | ({"Idempotency-Key": t[2].encode("utf-8").hex()} if t[2] is not None else {}),
            },
        )
    )
    return listing | retrieve | write


def _erp_request() -> st.SearchStrategy[tuple[str, str, dict]]:
    suiteql = st.tuples(_SUITEQL | _TEXT, _PARAMS, st.booleans()).map(
        lambda t: (
            "POST",
            SUITEQL,
            {"params": t[1], "content": json.dumps({"q": t[0]}).encode() if t[2] else b"{"},
        )
    )
    record_type = st.sampled_from(["invoice", "customer", "customerpayment", "item", "nope"])
    listing = st.tuples(record_type, _PARAMS).map(
        lambda t: ("GET", f"{RECORDS}/{t[0]}", {"params": t[1]})
    )
    record = st.tuples(
        st.sampled_from(["GET", "PATCH", "PUT", "POST"]),
        record_type,
        st.sampled_from(["5678", "1234", "eid:in_1QabcAcme0001", ""]) | _TEXT,
        st.binary(max_size=40) | _JSON.map(lambda j: json.dumps(j).encode()),
    ).map(
        lambda t: (
            t[0],
            f"{RECORDS}/{t[1]}" if t[0] == "POST" else f"{RECORDS}/{t[1]}/{t[2]}",
            {"content": t[3]},
        )
    )
    return suiteql | listing | record


REQUESTS = {"crm": _crm_request(), "billing": _billing_request(), "erp": _erp_request()}


@pytest.mark.parametrize("system", sorted(REQUESTS))
def test_fuzzed_requests_never_get_a_5xx_and_every_4xx_is_in_the_systems_shape(
    clients: dict[str, httpx.Client], system: str
) -> None:
    client = clients[system]

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(request=REQUESTS[system])
    def check(request: tuple[str, str, dict]) -> None:
        method, path, options = request
        options = dict(options)
        if options.pop("auth", True) is False:
            options["headers"] = {"Authorization": ""}
        try:
            url = httpx.URL(path)
        except httpx.InvalidURL:
            return  # not a request a client can send
        response = client.request(method, url, **options)
        assert response.status_code < 500, (method, path, response.text)
        if response.status_code >= 400:
            assert_refusal(system, response)

    check()
    # The server is still up and answering.
    alive = {"crm": f"{CRM_API}/sobjects/Account/001Hs00003AbCdEIAV", "billing": "/v1/customers"}
    assert client.get(alive.get(system, f"{RECORDS}/item/77")).status_code == 200


# ------------------------------------------------------------------ bounded SuiteQL

SLOW_QUERY = (
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 2000000000) "
    "SELECT count(*) AS c FROM t"
)


def test_a_slow_suiteql_query_is_cut_at_its_limit_while_record_gets_answer(
    handwritten_state: Path,
) -> None:
    store = StateStore.load(handwritten_state)
    apps = build_apps(
        store,
        credentials=Credentials(),
        faults=dict.fromkeys(("crm", "billing", "erp"), FaultSpec()),
        rate_limits={},
        seed=1,
    )
    apps["erp"] = FaultMiddleware(
        erp.build_app(store, credentials=Credentials(), faults=FaultSpec(), query_time_limit_s=2.0),
        system_errors=erp.ERRORS,
        rate_limit=None,
        faults=FaultSpec(),
        seed=1,
    )
    server = SandboxServer(apps)
    urls = server.start()
    headers = {"Authorization": "Bearer t", "Prefer": "transient"}
    slow: dict[str, httpx.Response] = {}

    def run_slow() -> None:
        slow["answer"] = httpx.post(
            f"{urls.erp}{SUITEQL}", json={"q": SLOW_QUERY}, headers=headers, timeout=60
        )

    worker = threading.Thread(target=run_slow)
    try:
        worker.start()
        time.sleep(0.3)  # the query is running
        with httpx.Client(base_url=urls.erp, headers=headers) as client:
            started = time.monotonic()
            record = client.get(f"{RECORDS}/invoice/5678")
            record_seconds = time.monotonic() - started
        worker.join(timeout=60)
    finally:
        server.stop()
    assert record.status_code == 200 and record.json()["id"] == "5678"
    assert record_seconds < 1.0
    assert "answer" in slow and worker.is_alive() is False
    refusal = assert_refusal("erp", slow["answer"])
    assert refusal["o:errorCode"] == "SSS_SEARCH_TIMEOUT"


def test_a_result_over_the_row_limit_is_refused(handwritten_state: Path) -> None:
    store = StateStore.load(handwritten_state)
    app = erp.build_app(store, credentials=Credentials(), faults=FaultSpec(), query_row_limit=5)
    from revops_pipelines_tests.test_sandbox_crm import serve

    headers = {"Authorization": "Bearer t", "Prefer": "transient"}
    with serve(app) as url:
        small = httpx.post(f"{url}{SUITEQL}", json={"q": "SELECT 1 AS one"}, headers=headers)
        many = httpx.post(
            f"{url}{SUITEQL}",
            json={"q": "SELECT * FROM range(100) AS r(n)"},
            headers=headers,
        )
        generated = httpx.post(
            f"{url}{SUITEQL}",
            json={
                "q": "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t "
                "WHERE n < 100) SELECT n FROM t"
            },
            headers=headers,
        )
    assert small.status_code == 200
    assert many.status_code == 400  # table functions are refused before they run
    assert "more than 5 rows" in assert_refusal("erp", generated)["detail"]
