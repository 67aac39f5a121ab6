"""Webhook latencies: the receiver's acknowledgement under load, and webhook → correction.

1. `revops webhooks serve` in its own process gets signed billing, CRM and ERP webhooks
   at a fixed rate (default 200/s, one in ten a repeat); each latency is measured from the
   moment the request was due, so a stalled server cannot hide queued requests.
   Goal: p99 ≤ 50 ms. Beside it, the same durable writes made one at a time without HTTP:
   an answer waits for its event's fsync, so the disk's own tail is the floor under it.
2. `revops demo`'s loop on a small generated scenario (sandbox delivering to the receiver,
   a real `dagster-daemon` firing the sensors): after everything is materialized and
   corrected, new invoices are made one every `--spacing` seconds; each is timed from its
   first webhook's receipt to the ERP write that corrects its `invoice_missing_in_erp`
   (the ledger's receipts and correction log). Goal: p95 ≤ 30 s. The default spacing,
   15 s, is about one refresh and one push: it times a change, not a queue; `--spacing 2`
   sends a burst that the runs take in batches.

The script checks its own answer (every request 2xx, one file per distinct id, every
change corrected) and exits non-zero when it is wrong. Each figure is printed with the
load average beside it, since a busy machine overstates wall time.

    python benchmarks/latency.py --rate 200 --seconds 10 --changes 20 --spacing 15
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import standardwebhooks
import stripe

from revops_pipelines.demo import Clock, change_outcomes, running_loop
from revops_pipelines.landing_zone.files import list_events, write_event
from revops_pipelines.sandbox.generate import generate_state
from revops_pipelines.settings import Settings


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


def durable_write_latency(directory: Path, requests: list, rate: float) -> list[float]:
    """The receiver's own durable write (`write_event`: temporary file, fsync, link, directory
    fsync) of the same events at the same rate, one at a time and without HTTP: the floor
    the disk sets under the acknowledgement."""
    latencies = []
    start = time.perf_counter() + 0.1
    for index, (source, _, _) in enumerate(requests):
        due = start + index / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        write_event(directory, source, f"floor{index}", b"{}", received=datetime.now(UTC))
        latencies.append((time.perf_counter() - due) * 1000)
    return latencies


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
        cpu_before = _cpu_s(server.pid)
        latencies, statuses = fire(url, requests, args.rate)
        cpu_ms = (_cpu_s(server.pid) - cpu_before) * 1000 / len(requests)
    finally:
        server.terminate()
        server.wait(timeout=10)
    distinct = {
        (source, json.loads(body)["id"] if source == "billing" else headers["webhook-id"])
        for source, body, headers in requests
    }
    landed = {(e.source, e.event_id) for e in list_events(landing)}
    ok = all(200 <= s < 300 for s in statuses) and landed == distinct
    if not ok:
        bad = [s for s in statuses if not 200 <= s < 300]
        print(f"WRONG: {len(bad)} requests not 2xx, {len(landed)} files for {len(distinct)} ids")
        return False
    p99 = percentile(latencies, 0.99)
    floor = durable_write_latency(work / "floor", requests, args.rate)
    if len(list_events(work / "floor")) != len(requests):
        print(f"WRONG: the floor's {len(requests)} writes did not each land one file")
        return False
    print(
        f"receiver ack at {args.rate:.0f} req/s over {len(requests)} requests "
        f"({len(requests) - len(distinct)} repeats): p50 {percentile(latencies, 0.5):.1f} ms, "
        f"p95 {percentile(latencies, 0.95):.1f} ms, p99 {p99:.1f} ms, "
        f"max {max(latencies):.1f} ms (goal p99 <= 50 ms: {'met' if p99 <= 50 else 'missed'}); "
        f"receiver CPU {cpu_ms:.2f} ms per request; {_load()}"
    )
    print(
        f"  the same durable writes one at a time, without HTTP (the disk's floor): "
        f"p50 {percentile(floor, 0.5):.1f} ms, p99 {percentile(floor, 0.99):.1f} ms, "
        f"max {max(floor):.1f} ms"
    )
    return True


def change_latency(args: argparse.Namespace, work: Path) -> bool:
    """Scripted changes → webhook → landing-zone sensor → refresh run → correction plan →
    push sensor → push, through a real `dagster-daemon`, the way `revops demo` runs."""
    data = work / "data"
    os.environ["REVOPS_DATA_DIR"] = str(data)
    os.environ["DAGSTER_HOME"] = str(data / "dagster_home")
    for name in ("AS_OF", "DUCKDB_PATH", "LEDGER_URL", "LANDING_DIR", "SANDBOX_STATE_DIR"):
        os.environ.pop(f"REVOPS_{name}", None)
    generate_state(
        data / "sandbox_state", customers=args.customers, months=3, seed=11, drift_rate=0.05
    )
    with running_loop(None, push=True, clock=Clock(time.monotonic())) as loop:
        loop.materialize("benchmark: materialize")
        if not loop.settle():
            return loop.failed() == 0
        changes = []
        for _ in range(args.changes):
            changes += loop.change("new-invoice")
            time.sleep(args.spacing)
        settled = loop.settle()
        outcomes = change_outcomes(loop.settings, changes)
    took = [o.webhook_to_correction_s for o in outcomes if o.webhook_to_correction_s is not None]
    if not (settled and changes and len(took) == len(changes)):
        print(f"WRONG: {len(changes) - len(took)} of {len(changes)} changes were never corrected")
        return False
    p95 = percentile(took, 0.95)
    print(
        f"webhook → correction over {len(took)} of {len(changes)} new invoices "
        f"({args.customers} customers, one every {args.spacing:g} s): "
        f"p50 {statistics.median(took):.1f} s, p95 {p95:.1f} s, max {max(took):.1f} s "
        f"(goal p95 <= 30 s: {'met' if p95 <= 30 else 'missed'}); {_load()}"
    )
    return True


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux), from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--changes", type=int, default=20, help="0 measures the ack only")
    parser.add_argument(
        "--spacing",
        type=float,
        default=15.0,
        help="seconds between changes (15: each change's own latency; 2: a burst that queues)",
    )
    parser.add_argument("--customers", type=int, default=30)
    args = parser.parse_args()
    secrets = Settings().webhook_secrets()
    with tempfile.TemporaryDirectory(prefix="revops-latency-") as tmp:
        work = Path(tmp)
        ok = ack_latency(args, work, secrets)
        if args.changes:
            ok = change_latency(args, work) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
