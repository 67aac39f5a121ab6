"""SIGKILL in the middle of a plan, of the pusher and of the sandbox: nothing missing, nothing
doubled (every write the sandbox applied is counted in its journal)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

from revops_pipelines.corrections.pusher import Pusher
from revops_pipelines.corrections.run import push_actions, targets_from
from revops_pipelines.ledger import Ledger
from revops_pipelines.sandbox.serve import running_sandbox
from revops_pipelines.settings import Settings
from revops_pipelines_tests.corrections_support import (
    erp_chain,
    external_id_counts,
    journal_writes,
    plan_of,
    policy,
    settings_for,
)

PUSH_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from revops_pipelines.corrections.pusher import Pusher
    from revops_pipelines.corrections.run import targets_from
    from revops_pipelines.ledger import Ledger
    from revops_pipelines.settings import Settings
    from revops_pipelines_tests.corrections_support import policy

    plan_id, actions = json.load(open(sys.argv[1]))
    settings = Settings(erp_url=sys.argv[2], crm_url=sys.argv[2], billing_url=sys.argv[2])
    rules = policy(erp={"concurrency": 2})
    with Ledger(sys.argv[3]) as ledger, targets_from(settings, rules) as targets:
        Pusher(ledger, targets, rules, lease_s=1.0).push(plan_id, actions)
    """
)


def _assert_no_attempt_lost(writes, actions, attempts) -> None:
    """Every write the sandbox applied was logged as sent before it went out, and every
    read-back that found a write follows the send it found."""
    by_external = {a["external_id"]: a["idempotency_key"] for a in actions}
    sent = Counter(row["idempotency_key"] for row in attempts if row["status"] == "sent")
    for external_id, key in by_external.items():
        assert writes[external_id] <= sent[key], (external_id, writes[external_id], sent[key])
    seen_sent: set[str] = set()
    for row in attempts:  # in the order they were written
        if row["status"] == "sent":
            seen_sent.add(row["idempotency_key"])
        elif row["status"] == "verified":
            assert row["idempotency_key"] in seen_sent, row


def _assert_once(state: Path, writes, actions) -> None:
    expected = {a["external_id"] for a in actions}
    assert {key: writes[key] for key in expected} == dict.fromkeys(expected, 1)
    counts = external_id_counts(state)
    for name in ("customer", "invoice", "customerpayment"):
        ours = {k: n for k, n in counts[name].items() if k in expected}
        assert ours and set(ours.values()) == {1}, (name, ours)


def test_the_pusher_killed_mid_plan_then_run_again(handwritten_state: Path, tmp_path):
    plan_id, actions = plan_of(erp_chain(25, prefix="k"))
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps([plan_id, actions], default=str))
    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    with running_sandbox(handwritten_state, faults="erp.latency_ms=40") as urls:
        with Ledger(ledger_url):
            pass  # migrated once, before the pusher process starts
        child = subprocess.Popen(
            [sys.executable, "-c", PUSH_SCRIPT, str(plan_file), urls.erp, ledger_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            with Ledger(ledger_url) as ledger:
                deadline = time.monotonic() + 60
                while len(ledger.attempts()) < 15 and time.monotonic() < deadline:
                    assert child.poll() is None, child.stderr.read()
                    time.sleep(0.05)
                os.kill(child.pid, signal.SIGKILL)
                child.wait(timeout=30)
                assert len(ledger.attempts()) < len(actions), "killed too late to show anything"
                time.sleep(1.2)  # the dead pusher's leases run out
                summary = push_actions(
                    settings_for(urls, tmp_path), policy(), ledger, plan_id, actions
                )
                assert summary.complete, summary.line()
                assert set(ledger.outcomes().values()) == {"applied"}
                attempts = ledger.attempts()
        finally:
            if child.poll() is None:
                child.kill()
        writes = journal_writes(handwritten_state)
    _assert_once(handwritten_state, writes, actions)
    _assert_no_attempt_lost(writes, actions, attempts)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _serve(state: Path, ports: list[int]) -> subprocess.Popen:
    crm, billing, erp = ports
    process = subprocess.Popen(
        [
            sys.executable, "-m", "revops_pipelines.cli", "sandbox", "serve",
            "--state", str(state), "--crm-port", str(crm), "--billing-port", str(billing),
            "--erp-port", str(erp), "--faults", "erp.latency_ms=40",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    for _ in range(3):
        assert process.stdout.readline(), process.stderr.read()
    return process


def test_the_sandbox_killed_mid_plan_then_restarted(handwritten_state: Path, tmp_path):
    plan_id, actions = plan_of(erp_chain(25, prefix="s"))
    ports = _free_ports(3)
    url = f"http://127.0.0.1:{ports[2]}"
    settings = Settings(data_dir=tmp_path, erp_url=url, crm_url=url, billing_url=url)
    rules = policy(erp={"concurrency": 2, "max_attempts": 10})
    server = _serve(handwritten_state, ports)
    summaries = []
    try:
        with Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger:

            def run() -> None:
                with targets_from(settings, rules) as targets:
                    summaries.append(Pusher(ledger, targets, rules).push(plan_id, actions))

            pushing = threading.Thread(target=run)
            pushing.start()
            deadline = time.monotonic() + 60
            while len(ledger.attempts()) < 15 and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
            assert pushing.is_alive(), "killed too late to show anything"
            server = _serve(handwritten_state, ports)
            pushing.join(timeout=120)
            if not summaries[-1].complete:  # what the first run left unknown
                summaries.append(push_actions(settings, rules, ledger, plan_id, actions))
            assert summaries[-1].complete, [s.line() for s in summaries]
            attempts = ledger.attempts()
        writes = journal_writes(handwritten_state)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    _assert_once(handwritten_state, writes, actions)
    _assert_no_attempt_lost(writes, actions, attempts)
