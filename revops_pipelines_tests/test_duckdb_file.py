"""A DuckDB file held by another process: waited for a bounded time, then its holder named."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from revops_pipelines.defs.resources import DuckDBFile
from revops_pipelines.duckdb_file import DuckDBLockedError, connect

HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_held_file_is_waited_for_then_the_holder_is_named(tmp_path):
    path = tmp_path / "revops.duckdb"
    holder = _hold(path, 30)
    try:
        started = time.monotonic()
        resource = DuckDBFile(path, lock_timeout_s=1.0)
        with pytest.raises(DuckDBLockedError) as raised, resource.connect(read_only=True):
            pass
        assert time.monotonic() - started >= 1.0
        assert f"PID {holder.pid}" in str(raised.value)
        assert str(path) in str(raised.value)
    finally:
        holder.kill()
        holder.wait()


def test_a_file_released_within_the_wait_opens(tmp_path):
    path = tmp_path / "revops.duckdb"
    holder = _hold(path, 1.0)
    try:
        with connect(path, lock_timeout_s=60.0) as con:
            assert con.execute("SELECT 42").fetchone() == (42,)
    finally:
        holder.wait(timeout=30)


def test_other_errors_are_not_retried(tmp_path):
    (tmp_path / "not_a_database").write_text("plain text, not DuckDB")
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        connect(tmp_path / "not_a_database", lock_timeout_s=30.0)
    assert not isinstance(raised.value, DuckDBLockedError)
    assert time.monotonic() - started < 10
