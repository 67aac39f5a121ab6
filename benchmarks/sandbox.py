"""Sandbox throughput: state load time and list pages per second over HTTP.

    python benchmarks/sandbox.py [--invoices 100000] [--seconds 3] [--clients 4]

Writes a synthetic state directory (shapes as in SOURCES.md, values made up), times
`StateStore.load`, then serves it with `revops sandbox serve` in a child process and
walks list pages from several client threads. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from revops_pipelines.sandbox.state import FILES, StateStore

START = 1_700_000_000
BILLING_KEY = "sk_test_benchmark"


def _write(path: Path, records) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")


def _invoice(number: int, customers: int) -> dict:
    customer = f"cus_B{number % customers:013d}"
    # Ten invoices a second, so many share a `created` and the id tie-break is exercised.
    created = START + number // 10
    line = {
        "id": f"il_B{number:013d}",
        "object": "line_item",
        "amount": 49000,
        "currency": "usd",
        "description": "10 × Pro Plan",
        "quantity": 10,
        "period": {"start": created, "end": created + 2_592_000},
        "pricing": {
            "type": "price_details",
            "price_details": {"price": "price_B0000000001", "product": "prod_B0000000001"},
            "unit_amount_decimal": "4900",
        },
    }
    return {
        "id": f"in_B{number:013d}",
        "object": "invoice",
        "customer": customer,
        "number": f"B-{number:07d}",
        "status": ("paid", "open", "void", "draft")[number % 4],
        "currency": "usd",
        "created": created,
        "period_start": created,
        "period_end": created + 2_592_000,
        "subtotal": 49000,
        "total": 53165,
        "total_excluding_tax": 49000,
        "amount_due": 53165,
        "amount_paid": 53165,
        "amount_remaining": 0,
        "total_taxes": [
            {
                "amount": 4165,
                "tax_behavior": "exclusive",
                "taxable_amount": 49000,
                "taxability_reason": "standard_rated",
                "type": "tax_rate_details",
                "tax_rate_details": {"tax_rate": "txr_B0001"},
            }
        ],
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"subscription": f"sub_B{number % customers:013d}"},
        },
        "lines": {
            "object": "list",
            "url": f"/v1/invoices/in_B{number:013d}/lines",
            "has_more": False,
            "data": [line],
        },
        "status_transitions": {"finalized_at": created, "paid_at": created, "voided_at": None},
        "metadata": {},
    }


def write_state(root: Path, *, invoices: int, others: int) -> None:
    """A state directory: `invoices` billing invoices, `others` rows in the big CRM/ERP files."""
    customers = max(1, min(others, invoices // 10 or 1))
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(json.dumps({"format": 1, "as_of": "2024-06-30"}))
    _write(root / "billing" / "invoices.jsonl", (_invoice(n, customers) for n in range(invoices)))
    _write(
        root / "billing" / "customers.jsonl",
        (
            {"id": f"cus_B{n:013d}", "object": "customer", "created": START + n, "name": f"C{n}"}
            for n in range(customers)
        ),
    )
    _write(
        root / "crm" / "Account.jsonl",
        (
            {
                "attributes": {"type": "Account"},
                "Id": f"001B{n:014d}",
                "Name": f"Account {n}",
                "IsDeleted": False,
                "SystemModstamp": "2024-01-01T00:00:00.000+0000",
            }
            for n in range(others)
        ),
    )
    _write(
        root / "erp" / "customer.jsonl",
        (
            {
                "id": str(1000 + n),
                "externalId": f"cus_B{n:013d}",
                "companyName": f"Account {n}",
                "isInactive": False,
                "lastModifiedDate": "2024-01-01T00:00:00Z",
            }
            for n in range(others)
        ),
    )
    for system, names in FILES.items():
        for name in names:
            path = root / system / f"{name}.jsonl"
            if not path.exists():
                _write(path, [])


def _rate(worker: Callable[[httpx.Client], None], *, url: str, clients: int, seconds: float):
    """Run `worker(client)` repeatedly on `clients` threads; returns pages per second."""
    counts = [0] * clients
    stop = time.perf_counter() + seconds

    def run(slot: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while time.perf_counter() < stop:
                worker(client)
                counts[slot] += 1

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def _billing_walker(params: dict) -> Callable[[httpx.Client], None]:
    local = threading.local()

    def step(client: httpx.Client) -> None:
        query = dict(params, limit=100)
        cursor = getattr(local, "cursor", None)
        if cursor:
            query["starting_after"] = cursor
        response = client.get(
            "/v1/invoices", params=query, headers={"Authorization": f"Bearer {BILLING_KEY}"}
        )
        # Finding the cursor without parsing the page keeps this client from being the
        # bottleneck; the synthetic lines are compact JSON and only invoices start `in_`.
        content = response.raise_for_status().content
        start = content.rfind(b'"id":"in_') + 6
        more = content.endswith(b'"has_more":true,"url":"/v1/invoices"}')
        local.cursor = content[start : content.index(b'"', start)].decode() if more else None

    return step


def _crm_walker(url: str) -> Callable[[httpx.Client], None]:
    token = httpx.post(
        url + "/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "bench", "client_secret": "x"},
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Sforce-Query-Options": "batchSize=200"}
    local = threading.local()

    def step(client: httpx.Client) -> None:
        following = getattr(local, "next", None)
        if following:
            response = client.get(following, headers=headers)
        else:
            response = client.get(
                "/services/data/v59.0/query",
                params={"q": "SELECT Id, Name FROM Account"},
                headers=headers,
            )
        local.next = response.raise_for_status().json().get("nextRecordsUrl")

    return step


def _erp_walker(rows: int) -> Callable[[httpx.Client], None]:
    local = threading.local()
    headers = {"Authorization": "Bearer benchmark", "Prefer": "transient"}

    def step(client: httpx.Client) -> None:
        offset = getattr(local, "offset", 0)
        response = client.post(
            "/services/rest/query/v1/suiteql",
            params={"limit": 100, "offset": offset},
            json={"q": "SELECT id, companyname FROM customer"},
            headers=headers,
        )
        body = response.raise_for_status().json()
        local.offset = offset + 100 if body["hasMore"] and offset + 100 < rows else 0

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--others", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="revops-bench-"))
    try:
        started = time.perf_counter()
        write_state(root, invoices=args.invoices, others=args.others)
        size = (root / "billing" / "invoices.jsonl").stat().st_size / 1e6
        print(
            f"state written: {args.invoices} invoices ({size:.0f} MB) in "
            f"{time.perf_counter() - started:.1f} s"
        )

        started = time.perf_counter()
        store = StateStore.load(root)
        print(
            f"StateStore.load: {time.perf_counter() - started:.2f} s "
            f"({len(store.collection('billing', 'invoices'))} invoices)"
        )
        del store

        revops = Path(sys.executable).parent / "revops"
        started = time.perf_counter()
        server = subprocess.Popen(
            [str(revops), "sandbox", "serve", "--state", str(root)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            urls = dict(server.stdout.readline().strip().split("=", 1) for _ in range(3))
            print(f"revops sandbox serve ready: {time.perf_counter() - started:.2f} s")
            headers = {"Authorization": f"Bearer {BILLING_KEY}"}
            started = time.perf_counter()
            httpx.get(urls["billing"] + "/v1/invoices", headers=headers, timeout=60)
            print(
                f"billing first list (sorts {args.invoices}): {time.perf_counter() - started:.2f} s"
            )
            for label, params in (
                ("billing /v1/invoices", {}),
                ("billing /v1/invoices?status=paid", {"status": "paid"}),
                ("billing /v1/invoices?customer=..", {"customer": "cus_B0000000000007"}),
            ):
                rate = _rate(
                    _billing_walker(params),
                    url=urls["billing"],
                    clients=args.clients,
                    seconds=args.seconds,
                )
                print(f"{label}: {rate:.0f} pages/s of 100 ({args.clients} clients)")
            rate = _rate(
                _crm_walker(urls["crm"]),
                url=urls["crm"],
                clients=args.clients,
                seconds=args.seconds,
            )
            print(f"crm query + nextRecordsUrl: {rate:.0f} pages/s of 200 ({args.clients} clients)")
            rate = _rate(
                _erp_walker(args.others),
                url=urls["erp"],
                clients=args.clients,
                seconds=args.seconds,
            )
            print(f"erp suiteql: {rate:.0f} pages/s of 100 ({args.clients} clients)")
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
