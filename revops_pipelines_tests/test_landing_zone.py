"""The webhook receiver over real HTTP: each accept and refusal, the landing dir checked after."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import standardwebhooks
import stripe
from sqlalchemy import select

from revops_pipelines.landing_zone.files import list_events, write_event
from revops_pipelines.landing_zone.serve import running_receiver
from revops_pipelines.ledger.models import WebhookReceipt
from revops_pipelines.ledger.store import Ledger
from revops_pipelines.settings import Settings

SECRETS = Settings().webhook_secrets()
TODAY = lambda: datetime.now(UTC).strftime("%Y-%m-%d")  # noqa: E731


def ledger_url(landing_dir: Path) -> str:
    """A ledger of the test's own, beside its landing directory."""
    return f"sqlite:///{landing_dir.parent / 'ledger.sqlite'}"


def receipts(landing_dir: Path) -> list[tuple[str, str]]:
    with Ledger(ledger_url(landing_dir), upgrade=False) as ledger, ledger.engine.connect() as con:
        rows = con.execute(select(WebhookReceipt.source, WebhookReceipt.event_id)).all()
    return sorted((source, event_id) for source, event_id in rows)


def landed(landing_dir: Path) -> list[str]:
    """Every file under the landing dir, temporary ones included, relative to it."""
    return sorted(str(p.relative_to(landing_dir)) for p in landing_dir.rglob("*") if p.is_file())


def stripe_event(event_id: str = "evt_1AbC") -> bytes:
    event = {
        "id": event_id,
        "object": "event",
        "type": "invoice.paid",
        "created": int(time.time()),
        "data": {"object": {"id": "in_1", "object": "invoice"}},
    }
    return json.dumps(event).encode()


def stripe_headers(body: bytes, *, secret: str = SECRETS["billing"], at: float | None = None):
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=int(at if at is not None else time.time())
    )
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


def crm_body() -> bytes:
    return json.dumps(
        {
            "type": "record.updated",
            "timestamp": "2026-01-01T00:00:00Z",
            "data": {"object": "Opportunity", "id": "006Hs00001XyZaAIAV"},
        }
    ).encode()


def standard_headers(
    body: bytes, *, msg_id: str = "msg_1", secret: str = SECRETS["crm"], at: float | None = None
):
    moment = datetime.fromtimestamp(int(at if at is not None else time.time()), UTC)
    signature = standardwebhooks.Webhook(secret).sign(msg_id, moment, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
    }


@pytest.fixture
def landing_dir(tmp_path: Path) -> Path:
    return tmp_path / "landing"


@pytest.fixture
def receiver(landing_dir: Path):
    with (
        running_receiver(
            landing_dir, secrets=SECRETS, ledger_url=ledger_url(landing_dir), body_limit=4096
        ) as running,
        httpx.Client(base_url=running.url, timeout=10) as client,
    ):
        running.client = client
        yield running


def test_verified_billing_event_is_landed_as_received(receiver, landing_dir):
    body = stripe_event("evt_1AbC")
    response = receiver.client.post("/webhooks/billing", content=body, headers=stripe_headers(body))
    assert response.status_code == 200
    assert landed(landing_dir) == [f"billing/{TODAY()}/evt_1AbC.json"]
    assert (landing_dir / "billing" / TODAY() / "evt_1AbC.json").read_bytes() == body
    assert receiver.stats.accepted["billing"] == 1
    assert receiver.flush_receipts()
    assert receipts(landing_dir) == [("billing", "evt_1AbC")]


@pytest.mark.parametrize("source", ["crm", "erp"])
def test_verified_standard_webhook_is_landed_by_its_webhook_id(receiver, landing_dir, source):
    body = crm_body()
    headers = standard_headers(body, msg_id="msg_2Xy", secret=SECRETS[source])
    response = receiver.client.post(f"/webhooks/{source}", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert landed(landing_dir) == [f"{source}/{TODAY()}/msg_2Xy.json"]
    assert (landing_dir / source / TODAY() / "msg_2Xy.json").read_bytes() == body


def test_any_of_several_v1_signatures_may_match(receiver, landing_dir):
    body = stripe_event("evt_rotated")
    good = stripe_headers(body)["Stripe-Signature"]
    t, v1 = good.split(",")
    header = f"{t},v1={'0' * 64},{v1}"
    response = receiver.client.post(
        "/webhooks/billing", content=body, headers={"Stripe-Signature": header}
    )
    assert response.status_code == 200
    crm = crm_body()
    headers = standard_headers(crm, msg_id="msg_rot")
    headers["webhook-signature"] = "v1,AAAA " + headers["webhook-signature"]
    assert receiver.client.post("/webhooks/crm", content=crm, headers=headers).status_code == 200
    assert landed(landing_dir) == sorted(
        [f"billing/{TODAY()}/evt_rotated.json", f"crm/{TODAY()}/msg_rot.json"]
    )


def _v0_header(body: bytes, at: int) -> str:
    digest = hmac.new(SECRETS["billing"].encode(), f"{at}.".encode() + body, hashlib.sha256)
    return f"t={at},v0={digest.hexdigest()}"


def _standard_v0(body: bytes) -> dict[str, str]:
    headers = standard_headers(body, msg_id="msg_v0")
    headers["webhook-signature"] = headers["webhook-signature"].replace("v1,", "v0,")
    return headers


def _refusals() -> list[tuple[str, str, object, int, str]]:
    """(name, path, request builder, status, reason) for every refusal."""
    billing = stripe_event("evt_refused")
    crm = crm_body()
    unsigned_no_id = json.dumps({"object": "event", "type": "x"}).encode()
    return [
        ("no signature", "billing", lambda: (billing, {}), 400, "missing_signature"),
        (
            "no standard signature",
            "crm",
            lambda: (crm, {"webhook-id": "msg_1"}),
            400,
            "missing_signature",
        ),
        (
            "wrong secret",
            "billing",
            lambda: (billing, stripe_headers(billing, secret="whsec_other")),
            400,
            "bad_signature",
        ),
        (
            "tampered body",
            "billing",
            lambda: (billing + b" ", stripe_headers(billing)),
            400,
            "bad_signature",
        ),
        (
            "v0 only",
            "billing",
            lambda: (billing, {"Stripe-Signature": _v0_header(billing, int(time.time()))}),
            400,
            "bad_signature",
        ),
        ("standard v0 only", "crm", lambda: (crm, _standard_v0(crm)), 400, "bad_signature"),
        (
            "garbage standard signature",
            "crm",
            lambda: (crm, {**standard_headers(crm), "webhook-signature": "nonsense"}),
            400,
            "bad_signature",
        ),
        (
            "another source's secret",
            "crm",
            lambda: (crm, standard_headers(crm, secret=SECRETS["erp"])),
            400,
            "other_source_secret",
        ),
        (
            "billing too old",
            "billing",
            lambda: (billing, stripe_headers(billing, at=time.time() - 400)),
            400,
            "timestamp_outside_tolerance",
        ),
        (
            "billing from the future",
            "billing",
            lambda: (billing, stripe_headers(billing, at=time.time() + 400)),
            400,
            "timestamp_outside_tolerance",
        ),
        (
            "standard too old",
            "erp",
            lambda: (crm, standard_headers(crm, secret=SECRETS["erp"], at=time.time() - 400)),
            400,
            "timestamp_outside_tolerance",
        ),
        (
            "standard from the future",
            "erp",
            lambda: (crm, standard_headers(crm, secret=SECRETS["erp"], at=time.time() + 400)),
            400,
            "timestamp_outside_tolerance",
        ),
        (
            "malformed json",
            "billing",
            lambda: (b"{not json", stripe_headers(b"{not json")),
            400,
            "malformed_json",
        ),
        (
            "json that is not an object",
            "crm",
            lambda: (b"[1]", standard_headers(b"[1]")),
            400,
            "malformed_json",
        ),
        (
            "billing event without id",
            "billing",
            lambda: (unsigned_no_id, stripe_headers(unsigned_no_id)),
            400,
            "no_id",
        ),
        (
            "standard webhook without webhook-id",
            "crm",
            lambda: (
                crm,
                {k: v for k, v in standard_headers(crm).items() if k != "webhook-id"},
            ),
            400,
            "no_id",
        ),
        (
            "billing id that escapes",
            "billing",
            lambda: (
                stripe_event("../../outside"),
                stripe_headers(stripe_event("../../outside")),
            ),
            400,
            "bad_id",
        ),
        (
            "webhook-id that escapes",
            "crm",
            lambda: (crm, standard_headers(crm, msg_id="../crm2/x")),
            400,
            "bad_id",
        ),
        (
            "hidden file name",
            "crm",
            lambda: (crm, standard_headers(crm, msg_id=".hidden")),
            400,
            "bad_id",
        ),
    ]


@pytest.mark.parametrize(
    ("path", "build", "status", "reason"),
    [case[1:] for case in _refusals()],
    ids=[case[0] for case in _refusals()],
)
def test_refused_requests_write_nothing_and_are_counted(
    receiver, landing_dir, caplog, path, build, status, reason
):
    body, headers = build()
    with caplog.at_level(logging.INFO, logger="revops_pipelines.landing_zone"):
        response = receiver.client.post(f"/webhooks/{path}", content=body, headers=headers)
    assert (response.status_code, response.json()["error"]) == (status, reason)
    assert receiver.flush_receipts()
    assert landed(landing_dir) == [] and receipts(landing_dir) == []
    assert receiver.stats.refused[(path, reason)] == 1
    assert sum(receiver.stats.accepted.values()) == 0
    logged = caplog.text
    assert reason in logged
    for secret in SECRETS.values():
        assert secret not in logged
    assert body.decode() not in logged


def test_oversized_body_is_refused_with_413_before_it_is_read(receiver, landing_dir):
    big = b'{"id": "evt_big", "pad": "' + b"x" * 10_000 + b'"}'
    response = receiver.client.post("/webhooks/billing", content=big, headers=stripe_headers(big))
    assert response.status_code == 413

    def chunks():
        for _ in range(100):
            yield b"x" * 1000

    # Without Content-Length the body is streamed and refused once past the limit.
    streamed = receiver.client.post(
        "/webhooks/crm", content=chunks(), headers=standard_headers(b"x", msg_id="msg_big")
    )
    assert streamed.status_code == 413
    assert landed(landing_dir) == []
    assert receiver.stats.refused[("billing", "body_too_large")] == 1
    assert receiver.stats.refused[("crm", "body_too_large")] == 1


def test_wrong_method_and_unknown_source(receiver, landing_dir):
    response = receiver.client.get("/webhooks/billing")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    body = stripe_event()
    assert (
        receiver.client.post("/webhooks/payroll", content=body, headers=stripe_headers(body))
    ).status_code == 404
    assert receiver.client.post("/elsewhere", content=body).status_code == 404
    assert landed(landing_dir) == []
    assert receiver.stats.refused[("billing", "method_not_allowed")] == 1
    assert receiver.stats.refused[("payroll", "unknown_source")] == 1


def test_a_repeated_id_writes_nothing_new(receiver, landing_dir):
    body = stripe_event("evt_twice")
    first = receiver.client.post("/webhooks/billing", content=body, headers=stripe_headers(body))
    path = landing_dir / "billing" / TODAY() / "evt_twice.json"
    stamp = path.stat().st_mtime_ns
    # A retry carries a new signature (and here a different body): the first file stays.
    other = stripe_event("evt_twice").replace(b"invoice.paid", b"invoice.updated")
    again = receiver.client.post("/webhooks/billing", content=other, headers=stripe_headers(other))
    assert first.json()["duplicate"] is False
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    assert landed(landing_dir) == [f"billing/{TODAY()}/evt_twice.json"]
    assert path.read_bytes() == body and path.stat().st_mtime_ns == stamp
    assert receiver.stats.duplicates["billing"] == 1


def test_an_id_landed_on_an_earlier_day_is_a_repeat(receiver, landing_dir):
    earlier = landing_dir / "crm" / "2020-01-01"
    earlier.mkdir(parents=True)
    (earlier / "msg_old.json").write_bytes(b"{}")
    body = crm_body()
    response = receiver.client.post(
        "/webhooks/crm", content=body, headers=standard_headers(body, msg_id="msg_old")
    )
    assert (response.status_code, response.json()["duplicate"]) == (200, True)
    assert landed(landing_dir) == ["crm/2020-01-01/msg_old.json"]


def test_twenty_concurrent_copies_write_one_file(receiver, landing_dir):
    body = stripe_event("evt_storm")
    headers = stripe_headers(body)

    def send(_: int) -> int:
        with httpx.Client(base_url=receiver.url, timeout=10) as client:
            return client.post("/webhooks/billing", content=body, headers=headers).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(send, range(20)))
    assert statuses == [200] * 20
    assert landed(landing_dir) == [f"billing/{TODAY()}/evt_storm.json"]
    assert receiver.stats.accepted["billing"] == 1
    assert receiver.stats.duplicates["billing"] == 19
    assert receiver.flush_receipts()
    assert receipts(landing_dir) == [("billing", "evt_storm")]
    assert [e.event_id for e in list_events(landing_dir)] == ["evt_storm"]


def test_the_answer_does_not_wait_for_the_ledger(receiver, landing_dir):
    """With the ledger locked by another writer the event is still landed and answered at
    once; its receipt follows when the ledger is free."""
    locker = sqlite3.connect(landing_dir.parent / "ledger.sqlite", timeout=0)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        body = stripe_event("evt_locked")
        started = time.perf_counter()
        response = receiver.client.post(
            "/webhooks/billing", content=body, headers=stripe_headers(body)
        )
        took = time.perf_counter() - started
        assert response.status_code == 200 and took < 1.0, took
        assert landed(landing_dir) == [f"billing/{TODAY()}/evt_locked.json"]
        assert not receiver.flush_receipts(timeout=0.5)
    finally:
        locker.rollback()
        locker.close()
    assert receiver.flush_receipts()
    assert receipts(landing_dir) == [("billing", "evt_locked")]


def test_a_file_landed_without_its_receipt_gets_it_at_the_next_start(landing_dir):
    """A receiver that died with receipts queued left files only; the next one records them."""
    body = stripe_event("evt_orphan")
    write_event(landing_dir, "billing", "evt_orphan", body, received=datetime.now(UTC))
    with Ledger(ledger_url(landing_dir)):
        pass
    assert receipts(landing_dir) == []
    with running_receiver(landing_dir, secrets=SECRETS, ledger_url=ledger_url(landing_dir)):
        assert receipts(landing_dir) == [("billing", "evt_orphan")]
    with running_receiver(landing_dir, secrets=SECRETS, ledger_url=ledger_url(landing_dir)):
        assert receipts(landing_dir) == [("billing", "evt_orphan")]


def test_stats_endpoint_reports_counts(receiver):
    receiver.client.post("/webhooks/billing", content=b"{}")
    stats = receiver.client.get("/stats").json()
    assert stats["refused"] == {"billing/missing_signature": 1}


def test_secrets_are_standard_webhooks_keys():
    for source in ("crm", "erp"):
        secret = SECRETS[source]
        assert secret.startswith("whsec_") and base64.b64decode(secret.removeprefix("whsec_"))


@pytest.mark.parametrize("source", ["billing", "crm"])
def test_tolerance_is_300_seconds_either_way(source):
    from revops_pipelines.landing_zone import signatures

    verifiers = signatures.verifiers(SECRETS)
    now = int(time.time())
    body = stripe_event() if source == "billing" else crm_body()
    sign = stripe_headers if source == "billing" else standard_headers
    for offset, accepted in ((-298, True), (298, True), (-302, False), (302, False)):
        headers = {k.lower(): v for k, v in sign(body, at=now + offset).items()}
        try:
            signatures.check(source, body, headers, verifiers=verifiers, now=now)
            outcome = True
        except signatures.SignatureRefused as refused:
            assert refused.reason == "timestamp_outside_tolerance"
            outcome = False
        assert outcome is accepted, offset
