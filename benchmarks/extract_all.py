"""All three systems extracted in one run, against each system's own API limit.

Each sandbox system is served by its own process with the limits of the real API:
billing 25 requests/s (Stripe test mode), CRM 25 requests/s with 2,000-record query
batches (Salesforce), ERP 5 concurrent requests with 50 ms latency each (a standard
NetSuite account). A system's bound is its requests divided by its allowance (the rate,
or concurrency ÷ latency): no extraction of it can be faster. The script extracts each
system alone, then all three in one run, changes 1 % of the customers of each system
through its API and runs an incremental extraction. It exits non-zero unless every
record arrived exactly once (and every change arrived), then prints the wall times as
ratios to the slowest system's bound (goal: <= 1.15) and the all-systems run against
the slowest system run alone (goal: <= 1.3).

    python benchmarks/extract_all.py --customers 10000 --months 12
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import duckdb

from revops_pipelines.clients import client_from_settings
from revops_pipelines.raw.extract import STREAM_TABLES, StreamStats, extract_all, stream_key
from revops_pipelines.sandbox.generate import generate_state
from revops_pipelines.sandbox.state import FILES, OPTIONAL
from revops_pipelines.settings import Settings

SYSTEMS = ("billing", "crm", "erp")
ERP_FILES = {
    "subsidiary": "subsidiary",
    "customer": "customer",
    "item": "item",
    "invoice": "invoice",
    "customer_payment": "customerpayment",
    "credit_memo": "creditmemo",
}


def system_state(state: Path, system: str, out: Path) -> Path:
    """A state directory holding only `system`'s files (the others empty), for its own server."""
    shutil.copytree(state / system, out / system)
    for other, names in FILES.items():
        if other == system:
            continue
        (out / other).mkdir(parents=True, exist_ok=True)
        for name in names:
            if (other, name) not in OPTIONAL:
                (out / other / f"{name}.jsonl").write_text("")
    manifest = state / "manifest.json"
    if manifest.exists():
        shutil.copy(manifest, out / "manifest.json")
    return out


SERVERS: dict[str, int] = {}  # system → the pid of the process serving it


@contextmanager
def serving(state: Path, system: str, options: list[str]) -> Iterator[str]:
    """One system's sandbox in its own process (its own event loop and GIL), as a remote API."""
    command = [sys.executable, "-m", "revops_pipelines.cli", "sandbox", "serve", "--state",
               str(state), *options]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            if line.startswith(f"{system}="):
                SERVERS[system] = process.pid
                yield line.strip().partition("=")[2]
                break
        else:
            raise RuntimeError(f"the {system} sandbox exited before printing its URL")
    finally:
        process.terminate()
        process.wait(timeout=30)


def state_ids(state: Path, system: str, name: str) -> set[str]:
    path = state / system / f"{name}.jsonl"
    if not path.exists():
        return set()
    id_field = "Id" if system == "crm" else "id"
    with path.open(encoding="utf-8") as lines:
        return {str(json.loads(line)[id_field]) for line in lines if line.strip()}


def expected_ids(state: Path, settings: Settings) -> dict[str, set[str] | int]:
    """Each stream's record ids from the state files, or its count from the ERP for the
    streams the ERP derives (lines, links, currencies)."""
    expected: dict[str, set[str] | int] = {}
    for name, spec in STREAM_TABLES["crm"][0].items():
        expected[stream_key("crm", name)] = state_ids(state, "crm", spec.source)
    for name, spec in STREAM_TABLES["billing"][0].items():
        expected[stream_key("billing", name)] = state_ids(state, "billing", spec.source)
    erp = client_from_settings(settings, "erp")
    try:
        for name, spec in STREAM_TABLES["erp"][0].items():
            if name in ERP_FILES:
                expected[stream_key("erp", name)] = state_ids(state, "erp", ERP_FILES[name])
                continue
            body, _ = erp.suiteql(f"SELECT id FROM {spec.source}", limit=1)
            expected[stream_key("erp", name)] = int(body["totalResults"])
    finally:
        erp.close()
    return expected


def check_once(path: Path, expected: dict[str, set[str] | int]) -> list[str]:
    """Streams whose raw table misses a record, holds an extra one, or holds one twice."""
    wrong = []
    with duckdb.connect(str(path), read_only=True) as con:
        for key, want in expected.items():
            total, distinct = con.execute(
                f"SELECT count(*), count(DISTINCT id) FROM raw.{key}"
            ).fetchone()
            got = {r[0] for r in con.execute(f"SELECT id FROM raw.{key}").fetchall()}
            if total != distinct:
                wrong.append(f"{key}: {total - distinct} records stored twice")
            elif isinstance(want, int) and total != want:
                wrong.append(f"{key}: {total} records, the ERP has {want}")
            elif isinstance(want, set) and got != want:
                wrong.append(f"{key}: {len(want - got)} missing, {len(got - want)} unexpected")
    return wrong


def state_records(state: Path, system: str, name: str) -> list[dict]:
    with (state / system / f"{name}.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def change_customers(settings: Settings, state: Path, share: float) -> dict[str, dict[str, str]]:
    """Rename `share` of each system's live customers through its API: system → id → name."""
    step = max(1, round(1 / share))
    clients = {system: client_from_settings(settings, system) for system in SYSTEMS}
    billing, crm, erp = clients["billing"], clients["crm"], clients["erp"]
    changed: dict[str, dict[str, str]] = {system: {} for system in SYSTEMS}
    try:
        customers = state_records(state, "billing", "customers")
        for number, record in enumerate(customers[::step]):
            name = f"Renamed billing customer {number}"
            billing.request(
                "POST",
                f"/v1/customers/{record['id']}",
                data={"name": name},
                idempotency_key=f"bench-{record['id']}",
            )
            changed["billing"][record["id"]] = name
        accounts = [r for r in state_records(state, "crm", "Account") if not r.get("IsDeleted")]
        for number, record in enumerate(accounts[::step]):
            name = f"Renamed account {number}"
            path = f"/services/data/{crm.api_version}/sobjects/Account/{record['Id']}"
            crm.request("PATCH", crm._rest(path), json={"Name": name})
            changed["crm"][record["Id"]] = name
        for number, record in enumerate(state_records(state, "erp", "customer")[::step]):
            name = f"Renamed ERP customer {number}"
            erp.request(
                "PUT",
                f"/services/rest/record/v1/customer/eid:{record['externalId']}",
                json={"companyName": name},
            )
            changed["erp"][str(record["id"])] = name
    finally:
        for client in clients.values():
            client.close()
    return changed


def check_changes(path: Path, changed: dict[str, dict[str, str]]) -> list[str]:
    where = {
        "billing": ("billing_customer", "$.name"),
        "crm": ("crm_account", "$.Name"),
        "erp": ("erp_customer", "$.companyname"),
    }
    wrong = []
    with duckdb.connect(str(path), read_only=True) as con:
        for system, names in changed.items():
            table, field = where[system]
            stored = dict(
                con.execute(f"SELECT id, json_extract_string(payload, '{field}') FROM raw.{table}")
                .fetchall()
            )  # fmt: skip
            missed = [i for i, name in names.items() if stored.get(i) != name]
            if missed:
                wrong.append(f"{table}: {len(missed)} of {len(names)} changes did not arrive")
    return wrong


def by_system(stats: dict[str, StreamStats], counter: str = "answered") -> dict[str, int]:
    """Requests each system answered (refusals are not part of its allowance), or the
    ones it refused (`counter="throttled"`)."""
    counts = dict.fromkeys(SYSTEMS, 0)
    for key, s in stats.items():
        counted = s.throttled if counter == "throttled" else s.requests - s.throttled
        counts[key.split("_", 1)[0]] += counted
    return counts


def server_cpu() -> dict[str, float]:
    """CPU seconds each sandbox process has used (Linux /proc; empty elsewhere)."""
    used = {}
    for system, pid in SERVERS.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        used[system] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


@dataclasses.dataclass
class Timing:
    """One run's wall time, the CPU time of this process and of each sandbox, and the load
    average when it ended."""

    wall_s: float
    cpu_s: float
    server_cpu_s: dict[str, float]
    load: tuple[float, float, float]

    def __str__(self) -> str:
        load = "/".join(f"{value:.1f}" for value in self.load)
        servers = ", ".join(f"{s} {v:.1f}" for s, v in self.server_cpu_s.items() if v >= 0.05)
        return (
            f"{self.wall_s:.1f} s wall, CPU s: client {self.cpu_s:.1f}"
            f"{', ' + servers if servers else ''}; load {load}"
        )


def timed(settings: Settings, path: Path, run_id: str, streams: list[str] | None = None):
    started, cpu, servers = time.monotonic(), time.process_time(), server_cpu()
    stats = extract_all(settings, path, run_id=run_id, streams=streams)
    used = {s: v - servers.get(s, 0.0) for s, v in server_cpu().items()}
    took = Timing(time.monotonic() - started, time.process_time() - cpu, used, os.getloadavg())
    print(f"  {run_id}: {took}", flush=True)
    return took, stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--state", type=Path, help="a generated state directory to copy")
    parser.add_argument("--billing-rate", type=float, default=25.0)
    parser.add_argument("--crm-rate", type=float, default=25.0)
    parser.add_argument("--erp-concurrency", type=int, default=5)
    parser.add_argument("--erp-latency-ms", type=float, default=50.0)
    parser.add_argument("--changed-share", type=float, default=0.01)
    args = parser.parse_args()

    allowance = {
        "billing": args.billing_rate,
        "crm": args.crm_rate,
        "erp": args.erp_concurrency / (args.erp_latency_ms / 1000.0),
    }
    limits = {
        "billing": ["--rate-limit", f"billing={args.billing_rate:g}/s"],
        "crm": ["--rate-limit", f"crm={args.crm_rate:g}/s"],
        "erp": [
            "--concurrency", f"erp={args.erp_concurrency}",
            "--faults", f"erp.latency_ms={args.erp_latency_ms:g}",
        ],
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as stack:
        tmp = Path(scratch)
        state = tmp / "state"
        if args.state:
            shutil.copytree(args.state, state)
        else:
            generate_state(
                state, customers=args.customers, months=args.months, seed=args.seed, drift_rate=0.05
            )
        urls = {
            system: stack.enter_context(
                serving(
                    system_state(state, system, tmp / f"{system}-state"), system, limits[system]
                )
            )
            for system in SYSTEMS
        }
        settings = dataclasses.replace(
            Settings(),
            crm_url=urls["crm"],
            billing_url=urls["billing"],
            erp_url=urls["erp"],
            billing_rate_limit=args.billing_rate,
            crm_rate_limit=args.crm_rate,
            erp_rate_limit=0.0,
        )
        expected = expected_ids(state, settings)
        records = sum(len(v) if isinstance(v, set) else v for v in expected.values())
        print(f"scenario: {args.customers} customers x {args.months} months, {records:,} records")

        print(f"load average before the runs: {os.getloadavg()}", flush=True)
        alone: dict[str, Timing] = {}
        wrong: list[str] = []
        for system in SYSTEMS:
            keys = [stream_key(system, name) for name in STREAM_TABLES[system][0]]
            path = tmp / f"alone-{system}.duckdb"
            alone[system], _ = timed(settings, path, f"alone-{system}", keys)
            wrong += check_once(path, {k: v for k, v in expected.items() if k in keys})

        path = tmp / "all.duckdb"
        full_s, full = timed(settings, path, "full")
        wrong += check_once(path, expected)
        changed = change_customers(settings, state, args.changed_share)
        incremental_s, incremental = timed(settings, path, "incremental")
        wrong += check_changes(path, changed)
        # Changes rename records: every stream still holds each record exactly once.
        wrong += check_once(path, expected)
        if wrong:
            print("WRONG:\n  " + "\n  ".join(wrong))
            return 1

    requests = by_system(full)
    refused = by_system(full, "throttled")
    bounds = {system: requests[system] / allowance[system] for system in SYSTEMS}
    slowest = max(bounds, key=bounds.get)
    print("system   requests  refused  allowance/s  bound s  alone s  alone/bound")
    for system in SYSTEMS:
        ratio = alone[system].wall_s / bounds[system]
        print(
            f"{system:8s} {requests[system]:8d}  {refused[system]:7d}  {allowance[system]:11.1f}"
            f"  {bounds[system]:7.1f}  {alone[system].wall_s:7.1f}  {ratio:10.2f}x"
            f"  ({alone[system]})"
        )
    slowest_alone = max(t.wall_s for t in alone.values())
    print(
        f"full, all three in one run: {full_s.wall_s:.1f} s = "
        f"{full_s.wall_s / bounds[slowest]:.2f}x the slowest bound ({slowest}, "
        f"{bounds[slowest]:.1f} s; goal <= 1.15x); {full_s.wall_s / slowest_alone:.2f}x the "
        f"slowest system alone (goal <= 1.3x); sum of bounds {sum(bounds.values()):.1f} s, "
        f"sum alone {sum(t.wall_s for t in alone.values()):.1f} s ({full_s})"
    )
    inc_requests = by_system(incremental)
    inc_bounds = {system: inc_requests[system] / allowance[system] for system in SYSTEMS}
    inc_slowest = max(inc_bounds, key=inc_bounds.get)
    print(
        f"incremental after {args.changed_share:.0%} of each system's customers changed: "
        f"{incremental_s.wall_s:.1f} s = {incremental_s.wall_s / inc_bounds[inc_slowest]:.2f}x "
        "the slowest "
        f"bound ({inc_slowest}, {inc_requests[inc_slowest]} requests, "
        f"{inc_bounds[inc_slowest]:.2f} s); requests by system {inc_requests}, refused "
        f"{by_system(incremental, 'throttled')} ({incremental_s})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
