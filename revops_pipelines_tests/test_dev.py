"""`revops dev`: starts without the instance-config warning and leaves nothing behind on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path

import httpx

from revops_pipelines.demo import descendants
from revops_pipelines.sandbox.generate import generate_state

REPO = Path(__file__).resolve().parents[1]
STOP_LIMIT_S = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] != "Z":
            alive.add(pid)
    return alive


def test_sigterm_stops_every_process_dev_started(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVOPS_", "DAGSTER_"))}
    # A small scenario made beforehand: `revops dev` serves it with the sandbox, as `make dev` does.
    generate_state(
        tmp_path / "data" / "sandbox_state", customers=10, months=1, seed=3, drift_rate=0.0
    )
    env |= {"REVOPS_DATA_DIR": str(tmp_path / "data")}
    log = (tmp_path / "dev.log").open("w")
    dev = subprocess.Popen(
        [sys.executable, "-m", "revops_pipelines.cli", "dev", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert dev.poll() is None, (tmp_path / "dev.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        else:
            raise AssertionError("the UI did not answer: " + (tmp_path / "dev.log").read_text())
        # The webserver answers before the daemon and code server are all up; give them a moment.
        time.sleep(3)
        started = _alive(descendants(dev.pid))
        assert len(started) >= 3, started  # dagster dev, its webserver and daemon at least

        dev.send_signal(signal.SIGTERM)
        begun = time.monotonic()
        dev.wait(timeout=STOP_LIMIT_S + 5)
        while _alive(started) and time.monotonic() - begun < STOP_LIMIT_S:
            time.sleep(0.2)
        assert time.monotonic() - begun < STOP_LIMIT_S
        assert _alive(started) == set()
    finally:
        # Whatever a failed test leaves running is ended here, by id.
        leftovers = started | (_alive(descendants(dev.pid)) if dev.poll() is None else set())
        if dev.poll() is None:
            dev.kill()
            dev.wait()
        for pid in _alive(leftovers):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.close()
    output = (tmp_path / "dev.log").read_text()
    assert "will not be used to configure Dagster" not in output, output
