"""Extraction throughput and incremental cost against a rate-limited, slow billing sandbox.

Prints the achieved request rate of a full invoice load as a share of the sandbox's
limit (goal: at least 90 %), and the share of records an incremental run reads after
1 % of the customers changed through the API (goal: at most 2 %).

    python benchmarks/extract.py --invoices 100000 --rate 50 --latency-ms 50
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from revops_pipelines.connectors.billing import BillingClient
from revops_pipelines.raw.extract import extract_stream

BASE_CREATED = 1_700_000_000


def write_state(root: Path, *, invoices: int, customers: int) -> None:
    """A state directory with only billing customers and invoices in it."""
    for system, names in {
        "crm": ("Account", "Opportunity", "OpportunityLineItem", "Product2", "Contract"),
        "billing": ("products", "prices", "subscriptions", "invoice_payments"),
        "erp": ("subsidiary", "customer", "item", "invoice", "customerpayment"),
    }.items():
        (root / system).mkdir(parents=True, exist_ok=True)
        for name in names:
            (root / system / f"{name}.jsonl").write_text("")
    span = 365 * 86400
    with (root / "billing" / "customers.jsonl").open("w") as out:
        for n in range(customers):
            out.write(
                json.dumps(
                    {
                        "id": f"cus_B{n:07d}",
                        "object": "customer",
                        "created": BASE_CREATED + n * span // customers,
                        "name": f"Customer {n}",
                        "email": f"ap{n}@example.com",
                        "currency": "usd",
                        "metadata": {},
                    }
                )
                + "\n"
            )
    with (root / "billing" / "invoices.jsonl").open("w") as out:
        for n in range(invoices):
            created = BASE_CREATED + n * span // invoices
            out.write(
                json.dumps(
                    {
                        "id": f"in_B{n:08d}",
                        "object": "invoice",
                        "customer": f"cus_B{n % customers:07d}",
                        "number": f"INV-{n:08d}",
                        "status": "paid",
                        "currency": "usd",
                        "created": created,
                        "period_start": created,
                        "period_end": created + 30 * 86400,
                        "subtotal": 10000,
                        "total": 10000,
                        "amount_due": 10000,
                        "amount_paid": 10000,
                        "amount_remaining": 0,
                        "total_taxes": [],
                        "lines": {"object": "list", "has_more": False, "data": []},
                        "metadata": {},
                    }
                )
                + "\n"
            )


@contextmanager
def serving(state: Path, *, rate: float, latency_ms: float) -> Iterator[str]:
    """The sandbox in its own process, so the client is measured without sharing a GIL."""
    command = [
        sys.executable, "-m", "revops_pipelines.cli", "sandbox", "serve", "--state", str(state),
        "--rate-limit", f"billing={rate:g}/s", "--faults", f"billing.latency_ms={latency_ms:g}",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            if line.startswith("billing="):
                yield line.strip().partition("=")[2]
                break
        else:
            raise RuntimeError("the sandbox exited before printing its URLs")
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=50.0, help="sandbox billing limit, req/s")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        write_state(state, invoices=args.invoices, customers=args.customers)
        with serving(state, rate=args.rate, latency_ms=args.latency_ms) as billing_url:
            client = BillingClient(
                billing_url,
                api_key="sk_test_benchmark",
                rate_limit=args.rate,
                workers=args.workers,
            )
            with duckdb.connect(str(Path(tmp) / "bench.duckdb")) as con:
                started = time.monotonic()
                full = extract_stream(client, con, "invoice", run_id="full")
                elapsed = time.monotonic() - started
                achieved = full.requests / elapsed
                print(
                    f"full load: {full.fetched} invoices, {full.requests} requests in "
                    f"{elapsed:.1f} s = {achieved:.1f} req/s = {achieved / args.rate:.0%} of the "
                    f"{args.rate:g} req/s limit (goal >= 90%); throttled={full.throttled} "
                    f"retries={full.retries}"
                )
                extract_stream(client, con, "customer", run_id="full")

                changed = max(1, args.customers // 100)
                for n in range(changed):
                    client.request(
                        "POST",
                        f"/v1/customers/cus_B{n * 100:07d}",
                        data={"metadata[touched]": "yes"},
                        idempotency_key=f"bench-{n}",
                    )
                customers = extract_stream(client, con, "customer", run_id="incremental")
                invoices = extract_stream(client, con, "invoice", run_id="incremental")
                print(
                    f"incremental after {changed} of {args.customers} customers changed "
                    f"({changed / args.customers:.1%}): read {customers.fetched} customers = "
                    f"{customers.fetched / args.customers:.2%} of the stream (goal <= 2%), "
                    f"stored changed={customers.changed}; invoices read {invoices.fetched}; "
                    f"requests={customers.requests + invoices.requests}"
                )
            client.close()


if __name__ == "__main__":
    main()
