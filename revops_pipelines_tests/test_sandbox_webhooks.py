"""The sandbox delivers every change as a signed webhook, at least once, with injectable faults."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from revops_pipelines.cli import main
from revops_pipelines.landing_zone.files import list_events
from revops_pipelines.landing_zone.serve import running_receiver
from revops_pipelines.sandbox.faults import FaultSpec
from revops_pipelines.sandbox.serve import running_sandbox
from revops_pipelines.sandbox.webhooks import WebhookSecrets
from revops_pipelines.settings import Settings
from revops_pipelines_tests.test_landing_zone import ledger_url

SECRETS = Settings().webhook_secrets()
SANDBOX_SECRETS = WebhookSecrets(**SECRETS)
BILLING_AUTH = {"Authorization": "Bearer sk_test_e2e"}


def landed_bodies(landing_dir: Path, source: str) -> list[dict]:
    return [json.loads(e.path.read_bytes()) for e in list_events(landing_dir) if e.source == source]


def billing_events(urls) -> list[dict]:
    return httpx.get(
        f"{urls.billing}/v1/events", params={"limit": 100}, headers=BILLING_AUTH
    ).json()["data"]


def crm_token(urls) -> str:
    response = httpx.post(
        f"{urls.crm}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "c", "client_secret": "s"},
    )
    return response.json()["access_token"]


@pytest.fixture
def landing_dir(tmp_path: Path) -> Path:
    return tmp_path / "landing"


def test_api_writes_and_scripted_changes_arrive_signed(handwritten_state, landing_dir):
    with (
        running_receiver(
            landing_dir, secrets=SECRETS, ledger_url=ledger_url(landing_dir)
        ) as receiver,
        running_sandbox(
            handwritten_state, deliver_to=receiver.url, webhook_secrets=SANDBOX_SECRETS, seed=1
        ) as urls,
    ):
        before = {e["id"] for e in billing_events(urls)}
        httpx.post(
            f"{urls.billing}/v1/customers/cus_R1a2B3c4D5e6F7",
            data={"email": "billing@acme.example"},
            headers=BILLING_AUTH,
        ).raise_for_status()
        token = crm_token(urls)
        httpx.patch(
            f"{urls.crm}/services/data/v59.0/sobjects/Opportunity/006Hs00001XyZaAIAV",
            json={"Name": "Acme Corp - Pro 12m (renamed)"},
            headers={"Authorization": f"Bearer {token}"},
        ).raise_for_status()
        httpx.patch(
            f"{urls.erp}/services/rest/record/v1/customer/1234",
            json={"email": "ap2@acme.example"},
            headers={"Authorization": "Bearer erp-token"},
        ).raise_for_status()
        for name in ("new-invoice", "drift-erp-invoice"):
            answer = httpx.post(f"{urls.billing}/_sandbox/changes/{name}")
            assert answer.status_code == 200, answer.text
        assert urls.deliverer.wait_idle(20)
        new_events = [e for e in billing_events(urls) if e["id"] not in before]

    assert receiver.stats.refused == {}
    assert {e["id"] for e in landed_bodies(landing_dir, "billing")} == {e["id"] for e in new_events}
    assert {e["type"] for e in new_events} == {"customer.updated", "invoice.finalized"}
    crm = landed_bodies(landing_dir, "crm")
    assert [(b["type"], b["data"]) for b in crm] == [
        ("record.updated", {"object": "Opportunity", "id": "006Hs00001XyZaAIAV"})
    ]
    erp = sorted((b["data"]["object"], b["data"]["id"]) for b in landed_bodies(landing_dir, "erp"))
    assert ("customer", "1234") in erp and any(kind == "invoice" for kind, _ in erp)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_deliveries_are_retried_until_the_receiver_answers(handwritten_state, landing_dir):
    port = _free_port()
    with running_sandbox(
        handwritten_state,
        deliver_to=f"http://127.0.0.1:{port}",
        webhook_secrets=SANDBOX_SECRETS,
        seed=2,
    ) as urls:
        urls.deliverer.backoff_s = 0.05
        assert httpx.post(f"{urls.billing}/_sandbox/changes/new-invoice").status_code == 200
        time.sleep(0.3)
        assert urls.deliverer.stats["retried"] >= 1 and list_events(landing_dir) == []
        with running_receiver(
            landing_dir, secrets=SECRETS, ledger_url=ledger_url(landing_dir), port=port
        ) as receiver:
            assert urls.deliverer.wait_idle(20)
    assert urls.deliverer.stats["delivered"] == 1
    assert receiver.stats.accepted["billing"] == 1
    assert len(list_events(landing_dir)) == 1


def test_refused_deliveries_are_retried_then_given_up(handwritten_state, landing_dir):
    wrong = WebhookSecrets(billing="whsec_wrong", crm=SECRETS["erp"], erp=SECRETS["crm"])
    with (
        running_receiver(
            landing_dir, secrets=SECRETS, ledger_url=ledger_url(landing_dir)
        ) as receiver,
        running_sandbox(
            handwritten_state, deliver_to=receiver.url, webhook_secrets=wrong, seed=3
        ) as urls,
    ):
        urls.deliverer.backoff_s = 0.01
        urls.deliverer.max_attempts = 3
        httpx.post(f"{urls.billing}/_sandbox/changes/new-invoice").raise_for_status()
        assert urls.deliverer.wait_idle(20)
    assert urls.deliverer.stats["gave_up"] == 1
    assert receiver.stats.refused[("billing", "bad_signature")] == 3
    assert list_events(landing_dir) == []


def test_faults_duplicate_and_drop_deliveries(handwritten_state, landing_dir):
    faults = {
        "billing": FaultSpec(webhook_duplicate_rate=1.0, webhook_reorder_rate=1.0),
        "crm": FaultSpec(webhook_drop_rate=1.0),
        "erp": FaultSpec(webhook_delay_ms=100),
    }
    with (
        running_receiver(
            landing_dir, secrets=SECRETS, ledger_url=ledger_url(landing_dir)
        ) as receiver,
        running_sandbox(
            handwritten_state,
            deliver_to=receiver.url,
            webhook_secrets=SANDBOX_SECRETS,
            faults=faults,
            seed=4,
        ) as urls,
    ):
        for name in ("new-invoice", "win-opportunity", "drift-erp-invoice"):
            httpx.post(f"{urls.billing}/_sandbox/changes/{name}").raise_for_status()
        assert urls.deliverer.wait_idle(20)
        stats = httpx.get(f"{urls.billing}/_sandbox/webhooks").json()
    assert receiver.stats.accepted == {"billing": 1, "erp": 1}
    assert receiver.stats.duplicates == {"billing": 1}
    assert stats["dropped"] == 1 and stats["duplicated"] == 1
    assert [e.source for e in list_events(landing_dir)] == ["billing", "erp"]


def test_cli_change_edits_the_files_when_nothing_serves_them(handwritten_state, capsys):
    assert main(["sandbox", "change", "--state", str(handwritten_state), "pay-invoice"]) == 2
    assert "no open invoice" in capsys.readouterr().err
    assert main(["sandbox", "change", "--state", str(handwritten_state), "new-invoice"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[:2] == ["billing", "invoice"]
    assert main(["sandbox", "change", "--state", str(handwritten_state), "pay-invoice"]) == 0
    events = [
        json.loads(line)
        for line in (handwritten_state / "billing" / "events.jsonl").read_text().splitlines()
    ]
    assert [e["type"] for e in events[-3:]] == [
        "invoice.finalized",
        "invoice_payment.paid",
        "invoice.paid",
    ]
    assert events[-1]["data"]["object"]["id"] == printed[2]


def test_the_commands_serve_deliver_and_change_through_the_running_sandbox(
    handwritten_state, tmp_path
):
    revops = Path(sys.executable).parent / "revops"
    env = {**os.environ, "REVOPS_DATA_DIR": str(tmp_path / "data")}
    landing_dir = tmp_path / "landing"
    receiver = subprocess.Popen(
        [str(revops), "webhooks", "serve", "--landing-dir", str(landing_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    sandbox = None
    try:
        line = receiver.stdout.readline().strip()
        assert line.startswith("webhooks=http://127.0.0.1:"), line
        command = ["sandbox", "serve", "--state", str(handwritten_state)]
        sandbox = subprocess.Popen(
            [str(revops), *command, "--deliver-to", line.removeprefix("webhooks=")],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        urls = dict(sandbox.stdout.readline().strip().split("=", 1) for _ in range(3))
        assert main(["sandbox", "change", "--state", str(handwritten_state), "new-invoice"]) == 0
        deadline = time.monotonic() + 20
        while not list_events(landing_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        (event,) = list_events(landing_dir)
        invoice_id = json.loads(event.path.read_bytes())["data"]["object"]["id"]
        # The running server made the change (the files were not edited under its feet).
        served = httpx.get(f"{urls['billing']}/v1/invoices/{invoice_id}", headers=BILLING_AUTH)
        assert served.status_code == 200
    finally:
        for process in (sandbox, receiver):
            if process is not None:
                process.terminate()
                process.wait(timeout=20)
    assert not (handwritten_state / ".serving.json").exists()
    assert (tmp_path / "data" / "ledger.sqlite").exists()


def test_delivery_faults_are_part_of_the_faults_option():
    from revops_pipelines.sandbox.faults import FaultSpecError, parse_faults

    faults = parse_faults("webhook_delay_ms=5,billing.webhook_drop_rate=0.3")
    assert faults["billing"] == FaultSpec(webhook_delay_ms=5, webhook_drop_rate=0.3)
    assert faults["crm"] == FaultSpec(webhook_delay_ms=5)
    with pytest.raises(FaultSpecError):
        parse_faults("webhook_duplicate_rate=2")
