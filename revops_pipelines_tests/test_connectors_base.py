"""Connector transport against httpx.MockTransport: retries, Retry-After, error mapping, paging."""

from __future__ import annotations

import json
import urllib.parse

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from revops_pipelines.connectors.base import ConnectorError, RateLimiter, parse_retry_after
from revops_pipelines.connectors.billing import BillingClient
from revops_pipelines.connectors.crm import CrmClient
from revops_pipelines.connectors.erp import ErpClient


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def scripted(*answers: httpx.Response | Exception):
    """A handler answering requests in order, recording them."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, seen


def billing_client(handler, sleep, **options) -> BillingClient:
    return BillingClient(
        "http://billing.test",
        api_key="sk_test_x",
        rate_limit=0,
        transport=httpx.MockTransport(handler),
        sleep=sleep,
        **options,
    )


def stripe_error(status: int, code: str, *, headers=None, param=None) -> httpx.Response:
    body = {"error": {"type": "invalid_request_error", "code": code, "message": code}}
    if param:
        body["error"]["param"] = param
    return httpx.Response(status, json=body, headers=headers or {})


def test_retry_after_is_honored_and_counted():
    sleep = FakeSleep()
    handler, seen = scripted(
        stripe_error(429, "rate_limit", headers={"Retry-After": "7"}),
        httpx.Response(200, json={"id": "cus_1"}),
    )
    client = billing_client(handler, sleep)
    assert client.retrieve("customers", "cus_1") == {"id": "cus_1"}
    assert sleep.calls == [7.0]
    assert client.stats.snapshot() == {"requests": 2, "retries": 1, "throttled": 1}
    assert seen[0].headers["Stripe-Version"] == "2026-10-28"
    assert seen[0].headers["Authorization"] == "Bearer sk_test_x"


def test_5xx_backs_off_exponentially_and_gives_up_after_max_attempts():
    sleep = FakeSleep()
    handler, seen = scripted(*[stripe_error(503, "api_error") for _ in range(4)])
    client = billing_client(handler, sleep, max_attempts=4, backoff_initial=1.0)
    with pytest.raises(ConnectorError) as caught:
        client.retrieve("invoices", "in_9")
    error = caught.value
    assert (error.system, error.status, error.retryable, error.record_id) == (
        "billing",
        503,
        True,
        "in_9",
    )
    assert len(seen) == 4 and len(sleep.calls) == 3
    # Exponential with at most `initial` of jitter: 1, 2, 4 plus jitter.
    for attempt, waited in enumerate(sleep.calls):
        assert 2**attempt <= waited <= 2**attempt + 1.0


def test_client_error_is_not_retried_and_names_the_field():
    sleep = FakeSleep()
    handler, seen = scripted(stripe_error(400, "parameter_invalid", param="email"))
    client = billing_client(handler, sleep)
    with pytest.raises(ConnectorError) as caught:
        client.retrieve("customers", "cus_2")
    assert (caught.value.code, caught.value.field, caught.value.retryable) == (
        "parameter_invalid",
        "email",
        False,
    )
    assert len(seen) == 1 and sleep.calls == []


def test_connection_errors_are_retried_and_idempotency_key_is_stable():
    sleep = FakeSleep()
    handler, seen = scripted(
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json={"id": "cus_3"}),
    )
    client = billing_client(handler, sleep)
    client.request("POST", "/v1/customers", data={"name": "A"}, idempotency_key="key-1")
    assert [r.headers["Idempotency-Key"] for r in seen] == ["key-1"] * 3
    assert client.stats.retries == 2


def crm_client(handler, sleep) -> CrmClient:
    return CrmClient(
        "http://crm.test",
        client_id="id",
        client_secret="secret",
        rate_limit=0,
        transport=httpx.MockTransport(handler),
        sleep=sleep,
    )


def token(n: int) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "access_token": f"tok{n}",
            "instance_url": "http://crm.test",
            "token_type": "Bearer",
            "issued_at": "1",
        },
    )


def test_crm_expired_session_gets_a_new_token():
    sleep = FakeSleep()
    expired = httpx.Response(
        401, json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    )
    page = {"totalSize": 1, "done": True, "records": [{"Id": "001A"}]}
    handler, seen = scripted(token(1), expired, token(2), httpx.Response(200, json=page))
    client = crm_client(handler, sleep)
    pages = [records for records, _ in client.query_pages("SELECT Id FROM Account")]
    assert pages == [[{"Id": "001A"}]]
    assert [r.headers.get("Authorization") for r in seen if "query" in r.url.path] == [
        "Bearer tok1",
        "Bearer tok2",
    ]
    assert b"client_secret=secret" in seen[0].content


def test_crm_errors_map_code_and_retryability():
    sleep = FakeSleep()
    limit = httpx.Response(403, json=[{"message": "over", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    bad = httpx.Response(
        400, json=[{"message": "bad field", "errorCode": "INVALID_FIELD", "fields": ["Foo"]}]
    )
    handler, _ = scripted(token(1), limit, bad)
    client = crm_client(handler, sleep)
    with pytest.raises(ConnectorError) as caught:
        list(client.query_pages("SELECT Foo FROM Account"))
    assert (caught.value.system, caught.value.code, caught.value.field) == (
        "crm",
        "INVALID_FIELD",
        "Foo",
    )
    assert not caught.value.retryable
    assert client.stats.throttled == 1 and client.stats.retries == 1


def test_crm_follows_next_records_url():
    sleep = FakeSleep()
    first = {
        "done": False,
        "nextRecordsUrl": "/services/data/v59.0/query/L-2",
        "records": [{"Id": "a"}],
    }
    second = {"done": True, "records": [{"Id": "b"}]}
    handler, seen = scripted(
        token(1), httpx.Response(200, json=first), httpx.Response(200, json=second)
    )
    client = crm_client(handler, sleep)
    assert [r for records, _ in client.query_pages("SELECT Id FROM Account") for r in records] == [
        {"Id": "a"},
        {"Id": "b"},
    ]
    assert seen[1].url.path.endswith("/queryAll") and seen[2].url.path.endswith("/query/L-2")


def test_erp_error_body_is_mapped():
    sleep = FakeSleep()
    body = {
        "type": "https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1",
        "title": "Bad Request",
        "status": 400,
        "o:errorDetails": [{"detail": "Invalid search query.", "o:errorCode": "INVALID_PARAMETER"}],
    }
    handler, seen = scripted(httpx.Response(400, json=body))
    client = ErpClient(
        "http://erp.test",
        token="t",
        rate_limit=0,
        transport=httpx.MockTransport(handler),
        sleep=sleep,
    )
    with pytest.raises(ConnectorError) as caught:
        client.suiteql("SELECT nope")
    assert (caught.value.code, caught.value.message, caught.value.status) == (
        "INVALID_PARAMETER",
        "Invalid search query.",
        400,
    )
    assert seen[0].headers["Prefer"] == "transient"
    assert json.loads(seen[0].content) == {"q": "SELECT nope"}


def test_parse_retry_after_accepts_seconds_and_dates():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


def test_rate_limiter_spaces_requests():
    now = [0.0]
    sleep = FakeSleep()

    def clock() -> float:
        return now[0]

    limiter = RateLimiter(4, clock=clock, sleep=sleep)
    for _ in range(5):
        limiter.acquire()
    assert sleep.calls == [0.25, 0.5, 0.75, 1.0]


def test_rate_limiter_makes_up_for_unused_turns_up_to_its_catch_up():
    now = [0.0]
    sleep = FakeSleep()
    limiter = RateLimiter(10, catch_up_s=0.2, clock=lambda: now[0], sleep=sleep)
    limiter.acquire()
    now[0] = 5.0  # nobody asked for 5 s: only 0.2 s of those turns are made up
    for _ in range(4):
        limiter.acquire()
    assert sleep.calls == [pytest.approx(0.1)]
    # Over any stretch: no more than rate x (stretch + catch-up) + 1 requests.
    now[0] = 5.1
    limiter.acquire()
    assert sleep.calls[-1] == pytest.approx(0.1)


def fake_stripe_list(records: list[dict]):
    """A Stripe-like list endpoint: newest first, `created` filters, starting_after."""
    ordered = sorted(records, key=lambda r: (r["created"], r["id"]), reverse=True)

    def handler(request: httpx.Request) -> httpx.Response:
        query = dict(urllib.parse.parse_qsl(request.url.query.decode()))
        rows = [
            r
            for r in ordered
            if r["created"] >= int(query.get("created[gte]", -1))
            and r["created"] <= int(query.get("created[lte]", 2**62))
        ]
        if "starting_after" in query:
            ids = [r["id"] for r in rows]
            rows = rows[ids.index(query["starting_after"]) + 1 :]
        limit = int(query.get("limit", 10))
        body = {"object": "list", "data": rows[:limit], "has_more": len(rows) > limit}
        return httpx.Response(200, json=body)

    return handler


@settings(max_examples=25, deadline=None)
@given(
    created=st.lists(st.integers(min_value=0, max_value=400), min_size=0, max_size=450),
    workers=st.integers(min_value=1, max_value=5),
)
def test_concurrent_list_reads_every_record_exactly_once(created, workers):
    records = [{"id": f"in_{i:04d}", "created": c} for i, c in enumerate(created)]
    client = billing_client(fake_stripe_list(records), FakeSleep(), workers=workers)
    got = [r["id"] for page in client.list_concurrent("invoices") for r in page]
    assert sorted(got) == sorted(r["id"] for r in records)
