"""Injected faults are real: seeded 5xx shares, latency, lost replies and rate limits over HTTP."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from revops_pipelines.sandbox import erp
from revops_pipelines.sandbox.faults import (
    FaultMiddleware,
    FaultSpec,
    FaultSpecError,
    TokenBucket,
    parse_faults,
    parse_rate_limits,
)
from revops_pipelines.sandbox.serve import running_sandbox
from revops_pipelines.sandbox.state import StateStore
from revops_pipelines_tests.test_sandbox_crm import serve

AUTH = {"Authorization": "Bearer sk_test_faults"}


def test_parse_faults_applies_shared_keys_and_system_overrides() -> None:
    specs = parse_faults("billing.error_rate=0.5, latency_ms=20,token_ttl_s=3,erp.latency_ms=0")
    assert specs["billing"] == FaultSpec(error_rate=0.5, latency_ms=20, token_ttl_s=3)
    assert specs["crm"] == FaultSpec(latency_ms=20, token_ttl_s=3)
    assert specs["erp"] == FaultSpec(latency_ms=0, token_ttl_s=3)
    assert parse_faults(None) == parse_faults("") == dict.fromkeys(specs, FaultSpec())


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("error_rate", "key=value"),
        ("bank.error_rate=0.1", "unknown system"),
        ("jitter_ms=4", "unknown key"),
        ("error_rate=lots", "not a number"),
        ("error_rate=1.5", "between 0 and 1"),
        ("latency_ms=-1", "negative"),
        ("token_ttl_s=0", "positive"),
    ],
)
def test_parse_faults_rejects_bad_specs(spec: str, words: str) -> None:
    with pytest.raises(FaultSpecError, match=words):
        parse_faults(spec)


def test_parse_rate_limits() -> None:
    assert parse_rate_limits(["billing=100/s", "crm=600/min", "erp=7"]) == {
        "billing": 100.0,
        "crm": 10.0,
        "erp": 7.0,
    }
    for bad in ("billing", "billing=fast", "bank=1/s", "billing=0/s"):
        with pytest.raises(FaultSpecError):
            parse_rate_limits([bad])


def test_token_bucket_allows_a_burst_then_says_how_long_to_wait() -> None:
    now = [0.0]
    bucket = TokenBucket(4.0, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [0.0] * 4
    assert bucket.take() == pytest.approx(0.25)
    now[0] += 0.25
    assert bucket.take() == 0.0
    assert bucket.take() > 0


def _statuses(state: Path, *, seed: int, count: int) -> list[int]:
    with (
        running_sandbox(state, faults="billing.error_rate=0.3", seed=seed) as urls,
        httpx.Client(base_url=urls.billing, headers=AUTH) as client,
    ):
        statuses = []
        for _ in range(count):
            response = client.get("/v1/products")
            statuses.append(response.status_code)
            if response.status_code >= 500:
                error = response.json()["error"]
                assert error["type"] == "api_error"
                assert response.headers["request-id"].startswith("req_")
        return statuses


def test_error_rate_share_is_about_right_and_seeded(handwritten_state: Path) -> None:
    first = _statuses(handwritten_state, seed=11, count=300)
    share = sum(s >= 500 for s in first) / len(first)
    assert 0.2 < share < 0.4
    assert set(first) == {200, 500, 503}
    assert _statuses(handwritten_state, seed=11, count=300) == first
    assert _statuses(handwritten_state, seed=12, count=300) != first


def test_latency_is_added_without_blocking_other_requests(handwritten_state: Path) -> None:
    with running_sandbox(handwritten_state, faults="billing.latency_ms=300") as urls:
        with httpx.Client(base_url=urls.billing, headers=AUTH) as client:
            started = time.perf_counter()
            assert client.get("/v1/products").status_code == 200
            assert time.perf_counter() - started >= 0.3
        with httpx.Client(base_url=urls.crm) as client:
            # Only billing was slowed down.
            started = time.perf_counter()
            client.get("/services/data/v59.0/")
            assert time.perf_counter() - started < 0.3

        async def many() -> float:
            async with httpx.AsyncClient(base_url=urls.billing, headers=AUTH) as client:
                started = time.perf_counter()
                answers = await asyncio.gather(*(client.get("/v1/products") for _ in range(10)))
                assert all(a.status_code == 200 for a in answers)
                return time.perf_counter() - started

        # Ten requests one after another would take 3 s; concurrent sleeps take about 0.3 s.
        assert asyncio.run(many()) < 2.0


def _customers(state: Path) -> list[dict]:
    """The billing customers as the state directory holds them: file plus journal."""
    return list(StateStore.load(state).collection("billing", "customers"))


def test_lost_reply_write_is_applied_and_a_keyed_retry_replays_it(handwritten_state: Path) -> None:
    faults = "billing.lost_reply_rate=0.5"
    with (
        running_sandbox(handwritten_state, faults=faults, seed=3) as urls,
        httpx.Client(base_url=urls.billing, headers=AUTH) as client,
    ):
        # Find a write whose answer is lost (seeded, so this loop is short and fixed).
        for attempt in range(50):
            key = {"Idempotency-Key": f"lost-{attempt}"}
            name = f"Lost Reply Co {attempt}"
            response = client.post("/v1/customers", data={"name": name}, headers=key)
            if response.status_code == 503:
                break
            assert response.status_code == 200
        else:
            pytest.fail("no reply was lost in 50 writes at a 50% rate")
        assert response.json()["error"]["type"] == "api_error"
        applied = [c for c in _customers(handwritten_state) if c["name"] == name]
        assert len(applied) == 1, "the write behind a lost reply must have happened"

        for _ in range(50):
            retry = client.post("/v1/customers", data={"name": name}, headers=key)
            if retry.status_code == 200:
                break
        assert retry.status_code == 200
        assert retry.headers["idempotent-replayed"] == "true"
        assert retry.json()["id"] == applied[0]["id"]
        assert [c["name"] for c in _customers(handwritten_state)].count(name) == 1

        # Without a key the retry is a new request: the duplicate is what a careless client gets.
        for _ in range(50):
            if client.post("/v1/customers", data={"name": name}).status_code == 200:
                break
        assert [c["name"] for c in _customers(handwritten_state)].count(name) >= 2


def test_lost_reply_never_touches_reads(handwritten_state: Path) -> None:
    with (
        running_sandbox(handwritten_state, faults="lost_reply_rate=1") as urls,
        httpx.Client(base_url=urls.billing, headers=AUTH) as client,
    ):
        assert all(client.get("/v1/customers").status_code == 200 for _ in range(20))


def test_billing_rate_limit_is_429_with_retry_after(handwritten_state: Path) -> None:
    with (
        running_sandbox(handwritten_state, rate_limits=["billing=5/s"]) as urls,
        httpx.Client(base_url=urls.billing, headers=AUTH) as client,
    ):
        answers = [client.get("/v1/products") for _ in range(12)]
        limited = [a for a in answers if a.status_code == 429]
        assert limited, "12 quick requests must exceed 5 per second"
        assert sum(a.status_code == 200 for a in answers) >= 5
        error = limited[0].json()["error"]
        assert error["code"] == "rate_limit"
        wait = float(limited[0].headers["retry-after"])
        assert 0 < wait <= 1.0
        time.sleep(wait + 0.05)
        assert client.get("/v1/products").status_code == 200
        # Other systems have their own limits (none here).
        with httpx.Client(base_url=urls.erp) as erp:
            assert all(erp.get("/").status_code != 429 for _ in range(12))


def test_crm_rate_limit_answer_is_request_limit_exceeded(handwritten_state: Path) -> None:
    with (
        running_sandbox(handwritten_state, rate_limits={"crm": 2.0}) as urls,
        httpx.Client(base_url=urls.crm) as client,
    ):
        answers = [client.get("/services/data/v59.0/") for _ in range(6)]
        limited = [a for a in answers if a.status_code == 403]
        assert limited
        assert limited[0].json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
        assert float(limited[0].headers["retry-after"]) > 0


def test_erp_rate_limit_answer_is_429(handwritten_state: Path) -> None:
    with (
        running_sandbox(handwritten_state, rate_limits={"erp": 2.0}) as urls,
        httpx.Client(base_url=urls.erp) as client,
    ):
        answers = [client.get("/services/rest/record/v1/item") for _ in range(6)]
        limited = [a for a in answers if a.status_code == 429]
        assert limited
        assert float(limited[0].headers["retry-after"]) > 0
        assert limited[0].json()["status"] == 429


def test_latency_is_the_answer_time_with_the_apps_own_work_inside_it() -> None:
    """An API's latency is its response time: an app that works 1 s behind a 1 s latency
    answers after about 1 s, not 2 s."""

    async def working(request: Request) -> Response:
        await asyncio.sleep(1.0)
        return JSONResponse({"done": True})

    layer = FaultMiddleware(
        Starlette(routes=[Route("/work", working)]),
        system_errors=erp.ERRORS,
        rate_limit=None,
        faults=FaultSpec(latency_ms=1000),
        seed=1,
    )
    with serve(layer) as url:
        started = time.perf_counter()
        answer = httpx.get(f"{url}/work", timeout=10)
        elapsed = time.perf_counter() - started
    assert answer.status_code == 200 and answer.json() == {"done": True}
    assert 1.0 <= elapsed < 1.9


def _after_answer_app() -> Starlette:
    """`/slow` answers after 0.5 s; `/quick` answers at once, then works 0.5 s more."""

    async def slow(request: Request) -> Response:
        await asyncio.sleep(0.5)
        return JSONResponse({"slow": True})

    async def quick(request: Request) -> Response:
        return JSONResponse({"quick": True}, background=BackgroundTask(asyncio.sleep, 0.5))

    return Starlette(routes=[Route("/slow", slow), Route("/quick", quick)])


def test_a_concurrency_slot_is_held_until_the_answer_and_free_once_it_is_out() -> None:
    """Counted as a client sees it: busy while it waits for the answer, free once it has it,
    whatever the app still does after the last byte."""
    layer = FaultMiddleware(
        _after_answer_app(),
        system_errors=erp.ERRORS,
        rate_limit=None,
        faults=FaultSpec(),
        seed=1,
        max_in_flight=1,
    )
    with serve(layer) as url:
        # One after another, each on its own connection: the next starts as soon as the
        # answer before it is read, while the app is still busy with that request.
        quick = [httpx.get(f"{url}/quick").status_code for _ in range(4)]
        assert (layer.served, layer.refused) == (4, 0)
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(httpx.get, f"{url}/slow")
            time.sleep(0.2)
            crowded = httpx.get(f"{url}/quick")
            assert waiting.result().status_code == 200
    assert quick == [200] * 4
    assert crowded.status_code == 429 and crowded.json()["status"] == 429
    assert (layer.served, layer.refused) == (5, 1)
