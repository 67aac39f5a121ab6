"""Opening the analytical DuckDB file when another process may hold it.

DuckDB lets one process write a file at a time, and while it does no other process can
open it, not even to read. A run that meets the file held (the UI or a notebook reading,
another run writing) waits a bounded time for it, then says who holds it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import tenacity

logger = logging.getLogger("revops_pipelines.duckdb")

_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")


class DuckDBLockedError(RuntimeError):
    """The file stayed locked by another process for the whole wait."""

    def __init__(self, path: str | Path, *, holder: str, waited_s: float) -> None:
        self.path = str(path)
        self.holder = holder
        super().__init__(
            f"DuckDB file {self.path} is held by another process ({holder}) and was still "
            f"held after {waited_s:g} s. DuckDB allows one process at a time to open a file "
            "it writes: let that process finish or stop it, then run again (the wait is "
            "REVOPS_DUCKDB_LOCK_TIMEOUT_S)."
        )


def _locked_by_another_process(error: BaseException) -> bool:
    return isinstance(error, duckdb.IOException) and "Could not set lock" in str(error)


def lock_holder(error: BaseException) -> str:
    """`PID 1234, /usr/bin/python3` from DuckDB's lock error; its whole text otherwise."""
    found = _HOLDER.search(str(error))
    if found is None:
        return str(error)
    return f"PID {found['pid']}, {found['program']}"


def connect(
    path: str | Path,
    *,
    read_only: bool = False,
    lock_timeout_s: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> duckdb.DuckDBPyConnection:
    """`duckdb.connect`, retried while another process holds the file, for at most
    `lock_timeout_s`; then `DuckDBLockedError` naming the holder."""

    def log_wait(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.info("DuckDB file %s is held by %s; waiting", path, lock_holder(error))

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(lock_timeout_s),
        wait=tenacity.wait_exponential(multiplier=0.05, max=2.0),
        retry=tenacity.retry_if_exception(_locked_by_another_process),
        before_sleep=log_wait,
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(duckdb.connect, str(path), read_only=read_only)
    except duckdb.IOException as error:
        if not _locked_by_another_process(error):
            raise
        raise DuckDBLockedError(path, holder=lock_holder(error), waited_s=lock_timeout_s) from error
