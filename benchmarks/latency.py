"""Webhook latencies: the receiver's acknowledgement under load, and change → landed → raw.

1. `revops webhooks serve` in its own process gets signed billing, CRM and ERP webhooks
   at a fixed rate (default 200/s, one in ten a repeat); each latency is measured from the
   moment the request was due, so a stalled server cannot hide queued requests.
   Goal: p99 ≤ 50 ms.
2. The sandbox delivers scripted changes to the receiver; each change is timed until its
   event file lands, and until fetch-on-notify has written the record to raw.

The script checks its own answer (every request 2xx, one file per distinct id, every
change landed and refreshed) and exits non-zero when it is wrong.

    python benchmarks/latency.py --rate 200 --seconds 10 --changes 20
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import httpx
import standardwebhooks
import stripe

from revops_pipelines.clients import client_from_settings
from revops_pipelines.landing_zone.files import list_events
from revops_pipelines.landing_zone.notices import pending_events, read_notice
from revops_pipelines.landing_zone.serve import running_receiver
from revops_pipelines.raw.extract import STREAM_TABLES, extract_stream
from revops_pipelines.raw.refresh import notified_for, streams_named
from revops_pipelines.sandbox.serve import running_sandbox
from revops_pipelines.sandbox.webhooks import WebhookSecrets
from revops_pipelines.settings import Settings

FIXTURE = Path(__file__).parent.parent / "revops_pipelines_tests" / "fixtures" / "handwritten_state"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def signed_requests(count: int, secrets: dict[str, str]) -> list[tuple[str, bytes, dict]]:
    """`count` signed requests over the three sources; every tenth repeats the one before."""
    now = datetime.now(UTC)
    requests: list[tuple[str, bytes, dict]] = []
    for number in range(count):
        if number % 10 == 9:
            requests.append(requests[-1])
            continue
        source = ("billing", "crm", "erp")[number % 3]
        if source == "billing":
            body = json.dumps(
                {
                    "id": f"evt_bench{number:07d}",
                    "object": "event",
                    "type": "invoice.updated",
                    "created": int(now.timestamp()),
                    "data": {"object": {"id": f"in_bench{number}", "object": "invoice"}},
                }
            ).encode()
            header = stripe.WebhookSignature.generate_signature_header(
                body.decode(), secrets["billing"]
            )
            requests.append((source, body, {"Stripe-Signature": header}))
            continue
        message_id = f"msg_bench{number:07d}"
        body = json.dumps(
            {"type": "record.updated", "data": {"object": "invoice", "id": str(number)}}
        ).encode()
        signature = standardwebhooks.Webhook(secrets[source]).sign(message_id, now, body.decode())
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        requests.append((source, body, headers))
    return requests


def fire(url: str, requests: list, rate: float, *, senders: int = 32) -> tuple[list, list]:
    """Send request i at `start + i / rate` from a pool of keep-alive connections."""
    parsed = urlsplit(url)
    latencies = [0.0] * len(requests)
    statuses = [0] * len(requests)
    start = time.perf_counter() + 0.3

    def sender(offset: int) -> None:
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        for index in range(offset, len(requests), senders):
            due = start + index / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            source, body, headers = requests[index]
            connection.request("POST", f"/webhooks/{source}", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            latencies[index] = (time.perf_counter() - due) * 1000
            statuses[index] = response.status
        connection.close()

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, statuses


def ack_latency(args: argparse.Namespace, work: Path, secrets: dict[str, str]) -> bool:
    landing = work / "ack"
    env = {**os.environ, **{f"REVOPS_{s.upper()}_WEBHOOK_SECRET": v for s, v in secrets.items()}}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "revops_pipelines.cli",
            "webhooks",
            "serve",
            "--landing-dir",
            str(landing),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = server.stdout.readline().strip()
        if not line.startswith("webhooks="):
            print(f"receiver did not start: {line!r}")
            return False
        url = line.removeprefix("webhooks=")
        requests = signed_requests(int(args.rate * args.seconds), secrets)
        latencies, statuses = fire(url, requests, args.rate)
    finally:
        server.terminate()
        server.wait(timeout=10)
    distinct = {
        (source, json.loads(body)["id"] if source == "billing" else headers["webhook-id"])
        for source, body, headers in requests
    }
    landed = {(e.source, e.event_id) for e in list_events(landing)}
    ok = all(200 <= s < 300 for s in statuses) and landed == distinct
    p99 = percentile(latencies, 0.99)
    print(
        f"receiver ack at {args.rate:.0f} req/s over {len(requests)} requests "
        f"({len(requests) - len(distinct)} repeats): p50 {percentile(latencies, 0.5):.1f} ms, "
        f"p95 {percentile(latencies, 0.95):.1f} ms, p99 {p99:.1f} ms, "
        f"max {max(latencies):.1f} ms (goal p99 <= 50 ms: {'met' if p99 <= 50 else 'missed'})"
    )
    if not ok:
        bad = [s for s in statuses if not 200 <= s < 300]
        print(f"WRONG: {len(bad)} requests not 2xx, {len(landed)} files for {len(distinct)} ids")
    return ok


def change_latency(args: argparse.Namespace, work: Path, secrets: dict[str, str]) -> bool:
    """Scripted changes → landed file → raw, one change at a time."""
    state = work / "state"
    shutil.copytree(FIXTURE, state)
    landing = work / "changes"
    names = ["new-invoice", "win-opportunity", "drift-erp-invoice", "pay-invoice"]
    to_landed: list[float] = []
    to_raw: list[float] = []
    ok = True
    with (
        running_receiver(
            landing, secrets=secrets, ledger_url=f"sqlite:///{work / 'ledger.sqlite'}"
        ) as receiver,
        running_sandbox(
            state, deliver_to=receiver.url, webhook_secrets=WebhookSecrets(**secrets)
        ) as urls,
        duckdb.connect(str(work / "revops.duckdb")) as con,
    ):
        settings = Settings(crm_url=urls.crm, billing_url=urls.billing, erp_url=urls.erp)
        clients = {s: client_from_settings(settings, s) for s in STREAM_TABLES}
        cursor = pending_events(landing, None)[1]
        for number in range(args.changes):
            started = time.perf_counter()
            answer = httpx.post(f"{urls.billing}/_sandbox/changes/{names[number % len(names)]}")
            if answer.status_code == 409:
                continue
            touched = {r["id"] for r in answer.json()["touched"]}
            notices = []
            deadline = started + 10
            while {n.record_id for n in notices} < touched and time.perf_counter() < deadline:
                new, cursor = pending_events(landing, cursor)
                notices += [n for e in new if (n := read_notice(e.path, e.source))]
                time.sleep(0.002)
            landed_at = time.perf_counter()
            if {n.record_id for n in notices} < touched:
                print(f"WRONG: change {number} never landed")
                ok = False
                continue
            for key, named in streams_named(notices).items():
                system = named[0].source
                stream = next(s for s in STREAM_TABLES[system][0] if f"{system}_{s}" == key)
                extract_stream(
                    clients[system],
                    con,
                    stream,
                    run_id="bench",
                    notified=notified_for(system, named),
                )
            to_landed.append((landed_at - started) * 1000)
            to_raw.append((time.perf_counter() - started) * 1000)
        for client in clients.values():
            client.close()
    if to_raw:
        print(
            f"change → landed over {len(to_landed)} changes: "
            f"p50 {statistics.median(to_landed):.1f} ms, p95 {percentile(to_landed, 0.95):.1f} ms; "
            "change → raw (fetch-on-notify): "
            f"p50 {statistics.median(to_raw):.1f} ms, p95 {percentile(to_raw, 0.95):.1f} ms"
        )
    return ok and len(to_raw) >= min(args.changes, 20) * 0.75


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    secrets = Settings().webhook_secrets()
    with tempfile.TemporaryDirectory(prefix="revops-latency-") as tmp:
        work = Path(tmp)
        ok = ack_latency(args, work, secrets)
        ok = change_latency(args, work, secrets) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
