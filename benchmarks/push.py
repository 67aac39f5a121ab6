"""Pushing corrections: throughput against the ERP's concurrency bound, peak memory.

    python benchmarks/push.py [--corrections 10000] [--concurrency 5] [--latency-ms 50]

Serves a copy of the test suite's hand-written state with `revops sandbox serve
--concurrency erp=N --faults erp.latency_ms=L` in a child process, plans N ERP customer
upserts and pushes them with the corrections pusher (ledger in a temporary SQLite file).
The bound is concurrency ÷ latency requests per second; the goal is ≥ 90 % of it.
Prints CPU per write of the pusher and of the sandbox (Linux: read from /proc) beside the
wall-clock figures, which a shared machine's load stretches.
Exits non-zero unless every record arrived exactly once and every key ended applied.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from revops_pipelines.corrections.planner import Plan, erp_upsert, finish, plan_rows  # noqa: E402
from revops_pipelines.corrections.policy import default_path, parse_policy  # noqa: E402
from revops_pipelines.corrections.pusher import Pusher  # noqa: E402
from revops_pipelines.corrections.run import as_action, targets_from  # noqa: E402
from revops_pipelines.ledger import Ledger  # noqa: E402
from revops_pipelines.sandbox.state import StateStore  # noqa: E402
from revops_pipelines.settings import Settings  # noqa: E402

FIXTURE = REPO / "revops_pipelines_tests" / "fixtures" / "handwritten_state"


def _actions(count: int) -> tuple[str, list[dict]]:
    actions = [
        erp_upsert(
            "customer",
            {
                "externalId": f"cus_bench{n:06d}",
                "companyName": f"Benchmark Co {n}",
                "email": f"ap{n}@bench.example",
                "subsidiary": {"id": "1"},
                "currency": {"id": "1"},
            },
            reason=f"bench-{n}",
        )
        for n in range(count)
    ]
    actions = finish(actions)
    from datetime import UTC, datetime

    plan = Plan("bench", datetime.now(UTC), actions, [], {}, [])
    return plan.plan_id, [as_action(row) for row in plan_rows(plan)]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process, from /proc (the machine may be shared, so
    CPU per write is the figure that does not depend on what else runs)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corrections", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    args = parser.parse_args()

    import tomllib

    raw = tomllib.loads(default_path().read_text())
    raw["targets"]["erp"].update(concurrency=args.concurrency, rate_per_s=10_000.0)
    policy = parse_policy(raw)
    work = Path(tempfile.mkdtemp(prefix="revops-push-bench-"))
    state = work / "state"
    shutil.copytree(FIXTURE, state)
    server = subprocess.Popen(
        [
            sys.executable, "-m", "revops_pipelines.cli", "sandbox", "serve",
            "--state", str(state), "--concurrency", f"erp={args.concurrency}",
            "--faults", f"erp.latency_ms={args.latency_ms}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        urls = dict(server.stdout.readline().strip().split("=", 1) for _ in range(3))
        settings = Settings(erp_url=urls["erp"], crm_url=urls["crm"], billing_url=urls["billing"])
        plan_id, actions = _actions(args.corrections)
        with Ledger(f"sqlite:///{work / 'ledger.sqlite'}") as ledger:
            with targets_from(settings, policy) as targets:
                started, cpu_started = time.perf_counter(), time.process_time()
                server_cpu_started = _cpu_seconds(server.pid)
                summary = Pusher(ledger, targets, policy).push(plan_id, actions)
                seconds = time.perf_counter() - started
                pusher_cpu = time.process_time() - cpu_started
                server_cpu = _cpu_seconds(server.pid) - server_cpu_started
                throttled = targets["erp"].writer.stats.snapshot()["throttled"]
            outcomes = Counter(ledger.outcomes().values())
    finally:
        server.terminate()
        server.wait(timeout=60)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    store = StateStore.load(state)
    held = Counter(
        str(r.get("externalId"))
        for r in store.collection("erp", "customer")
        if str(r.get("externalId", "")).startswith("cus_bench")
    )
    shutil.rmtree(work, ignore_errors=True)

    wrong = []
    if len(held) != args.corrections or set(held.values()) != {1}:
        twice = sum(1 for n in held.values() if n > 1)
        wrong.append(f"records held: {len(held)} distinct, {twice} more than once")
    if outcomes != Counter({"applied": args.corrections}):
        wrong.append(f"key outcomes: {dict(outcomes)}")
    for problem in wrong:
        print(f"WRONG: {problem}", file=sys.stderr)
    if wrong:
        return 1
    rate = args.corrections / seconds
    bound = args.concurrency / (args.latency_ms / 1000.0)
    print(f"corrections: {args.corrections}, ERP concurrency {args.concurrency}, "
          f"latency {args.latency_ms:.0f} ms")  # fmt: skip
    print(f"pushed in {seconds:.1f} s: {rate:.1f}/s, bound {bound:.0f}/s, "
          f"share of bound {rate / bound:.1%}")  # fmt: skip
    print(f"throttled answers (429): {throttled}; results: {dict(summary.counts)}")
    print(f"CPU per write during the push: pusher {pusher_cpu / args.corrections * 1e3:.2f} ms, "
          f"sandbox {server_cpu / args.corrections * 1e3:.2f} ms")  # fmt: skip
    print(f"peak memory of the pusher process: {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
