"""The sandbox write journal: durable, all-or-nothing writes across files, compaction, restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from revops_pipelines.sandbox.journal import JOURNAL_NAME
from revops_pipelines.sandbox.serve import running_sandbox
from revops_pipelines.sandbox.state import StateStore

ERP_AUTH = {"Authorization": "Bearer erp-token"}
BILLING_AUTH = {"Authorization": "Bearer sk_test_journal"}
RECORDS = "/services/rest/record/v1"


def _serve(state: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "revops_pipelines.cli", "sandbox", "serve", "--state", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    urls: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while len(urls) < 3 and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        system, _, url = line.strip().partition("=")
        urls[system] = url
    assert len(urls) == 3, process.stderr.read() if process.poll() is not None else urls
    return process, urls


def _new_invoice(erp: httpx.Client, number: int) -> str:
    body = {
        "entity": {"id": "1234"},
        "subsidiary": {"id": "1"},
        "currency": {"id": "1"},
        "total": 10.0,
        "subtotal": 10.0,
        "item": {"items": [{"item": {"id": "77"}, "quantity": 1, "amount": 10.0}]},
    }
    answer = erp.put(f"{RECORDS}/invoice/eid:in_journal_{number}", json=body)
    assert answer.status_code == 204, answer.text
    return answer.headers["Location"].rpartition("/")[2]


def test_kill_9_during_a_write_burst_keeps_every_acked_write_and_no_half(
    handwritten_state: Path,
) -> None:
    process, urls = _serve(handwritten_state)
    acked_payments: dict[str, str] = {}
    acked_customers: list[str] = []
    stop = threading.Event()
    try:
        with httpx.Client(base_url=urls["erp"], headers=ERP_AUTH, timeout=10) as erp:
            invoices = [_new_invoice(erp, n) for n in range(40)]

        def pay(worker: int) -> None:
            with httpx.Client(base_url=urls["erp"], headers=ERP_AUTH, timeout=10) as erp:
                for n, invoice in enumerate(invoices[worker::4]):
                    if stop.is_set():
                        return
                    external = f"inpay_journal_{worker}_{n}"
                    body = {
                        "customer": {"id": "1234"},
                        "payment": 10.0,
                        "apply": {"items": [{"doc": {"id": invoice}, "amount": 10.0}]},
                    }
                    try:
                        answer = erp.put(f"{RECORDS}/customerpayment/eid:{external}", json=body)
                    except httpx.HTTPError:
                        return
                    if answer.status_code == 204:
                        acked_payments[external] = invoice

        def create_customers() -> None:
            with httpx.Client(base_url=urls["billing"], headers=BILLING_AUTH, timeout=10) as api:
                for n in range(200):
                    if stop.is_set():
                        return
                    try:
                        answer = api.post("/v1/customers", data={"name": f"Journal Co {n}"})
                    except httpx.HTTPError:
                        return
                    if answer.status_code == 200:
                        acked_customers.append(answer.json()["id"])

        threads = [threading.Thread(target=pay, args=(w,)) for w in range(4)]
        threads.append(threading.Thread(target=create_customers))
        for thread in threads:
            thread.start()
        # Killed in the middle of both bursts, however slowly a loaded machine starts them.
        deadline = time.monotonic() + 60
        while (len(acked_payments) < 10 or not acked_customers) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
    assert len(acked_payments) >= 10 and acked_customers

    store = StateStore.load(handwritten_state)
    payments = {p.get("externalId"): p for p in store.collection("erp", "customerpayment").records}
    invoices = store.collection("erp", "invoice")
    assert set(acked_payments) <= set(payments)
    for external, payment in payments.items():
        if not str(external).startswith("inpay_journal_"):
            continue
        invoice = invoices.get(payment["apply"]["items"][0]["doc"]["id"])
        # The payment and the invoice it pays were one write: never one without the other.
        assert invoice["amountRemaining"] == 0.0 and invoice["status"]["id"] == "paidInFull"
    for invoice in invoices.records:
        if str(invoice.get("externalId", "")).startswith("in_journal_"):
            paid = [
                p for p in payments.values() if p["apply"]["items"][0]["doc"]["id"] == invoice["id"]
            ]
            assert invoice["amountRemaining"] == 10.0 - 10.0 * len(paid)
    customers = {c["id"] for c in store.collection("billing", "customers")}
    created_events = {
        e["data"]["object"]["id"]
        for e in store.collection("billing", "events")
        if e["type"] == "customer.created"
    }
    assert set(acked_customers) <= customers
    journal_customers = {c for c in customers if c not in created_events}
    original = StateStore.load(Path(__file__).parent / "fixtures" / "handwritten_state")
    assert journal_customers <= {c["id"] for c in original.collection("billing", "customers")}


def test_a_cut_last_line_is_ignored(handwritten_state: Path) -> None:
    with (
        running_sandbox(handwritten_state) as urls,
        httpx.Client(base_url=urls.erp, headers=ERP_AUTH) as erp,
    ):
        _new_invoice(erp, 1)
    journal = handwritten_state / JOURNAL_NAME
    before = StateStore.load(handwritten_state)
    with journal.open("ab") as out:
        out.write(b'{"w": [["erp", "invoice", {"id": "999999", "externalId": "half')
    after = StateStore.load(handwritten_state)
    assert after.collection("erp", "invoice").get("999999") is None
    assert len(after.collection("erp", "invoice")) == len(before.collection("erp", "invoice"))


def test_shutdown_compacts_into_the_state_files(handwritten_state: Path) -> None:
    with (
        running_sandbox(handwritten_state) as urls,
        httpx.Client(base_url=urls.erp, headers=ERP_AUTH) as erp,
    ):
        invoice = _new_invoice(erp, 2)
        assert (handwritten_state / JOURNAL_NAME).stat().st_size > 0
    text = (handwritten_state / "erp" / "invoice.jsonl").read_text(encoding="utf-8")
    assert f'"id":"{invoice}"' in text.replace(" ", "")
    assert (handwritten_state / JOURNAL_NAME).read_bytes() == b""


def test_concurrent_upserts_of_one_external_id_all_succeed_and_leave_one_record(
    handwritten_state: Path,
) -> None:
    answers: list[int] = []
    with running_sandbox(handwritten_state) as urls:

        def upsert(n: int) -> None:
            body = {"companyName": f"Race Co {n}", "subsidiary": {"id": "1"}}
            with httpx.Client(base_url=urls.erp, headers=ERP_AUTH) as erp:
                answers.append(erp.put(f"{RECORDS}/customer/eid:cus_Race", json=body).status_code)

        threads = [threading.Thread(target=upsert, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert answers == [204] * 20
    store = StateStore.load(handwritten_state)
    races = [c for c in store.collection("erp", "customer") if c.get("externalId") == "cus_Race"]
    assert len(races) == 1


def test_idempotency_records_survive_a_restart(handwritten_state: Path) -> None:
    headers = {**BILLING_AUTH, "Idempotency-Key": "restart-1"}
    with (
        running_sandbox(handwritten_state) as urls,
        httpx.Client(base_url=urls.billing) as api,
    ):
        first = api.post("/v1/customers", data={"name": "Keyed Co"}, headers=headers)
        assert first.status_code == 200
    with (
        running_sandbox(handwritten_state) as urls,
        httpx.Client(base_url=urls.billing) as api,
    ):
        again = api.post("/v1/customers", data={"name": "Keyed Co"}, headers=headers)
        too_long = api.post(
            "/v1/customers",
            data={"name": "Long Key Co"},
            headers={**BILLING_AUTH, "Idempotency-Key": "k" * 256},
        )
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == first.json()["id"]
    assert too_long.status_code == 400
    named = [
        c
        for c in StateStore.load(handwritten_state).collection("billing", "customers")
        if c["name"] == "Keyed Co"
    ]
    assert len(named) == 1
