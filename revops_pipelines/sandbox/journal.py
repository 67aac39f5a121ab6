"""The sandbox's write journal: every API write is one line, fsynced before it is answered.

A write that touches several state files (a payment and the invoice it pays, a customer
and its `customer.created` event) is one journal line, so a crash keeps all of it or none
of it; a line cut short by `kill -9` was never acknowledged and is ignored. The state files
are brought up to date by compaction, on shutdown or when the journal grows large; loading
replays the journal over the files, so readers always see every acknowledged write.

A line is written (to the operating system, so `kill -9` cannot lose it) and applied under
the store's lock; the fsync happens outside it, in `sync`, which each app calls before it
answers a request. One fsync covers every line written before it, so concurrent writers
share them instead of queueing behind each other's.

Besides records, a line may carry extras: small keyed maps a system keeps across restarts
(the billing API's idempotency records). Compaction keeps them in the journal.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool

JOURNAL_NAME = "journal.jsonl"
COMPACT_BYTES = 64 * 1024 * 1024
CHANGE_FEED = 5000  # recent writes kept in memory, so derived tables update in place

Write = tuple[str, str, dict[str, Any]]  # (system, state file name, whole record)


class _Store(Protocol):
    state_dir: Path

    def collection(self, system: str, name: str) -> Any: ...

    def persist(self, system: str, name: str) -> None: ...


def _fsync_dir(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _line(writes: Iterable[Write], extras: dict[str, dict[str, Any]] | None) -> bytes:
    entry: dict[str, Any] = {"w": [list(write) for write in writes]}
    if extras:
        entry["x"] = extras
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class Journal:
    """Appends, replays and compacts `journal.jsonl` of one state directory.

    Callers hold the store's lock around `commit` so lines and memory change in one order.
    """

    def __init__(self, store: _Store, *, compact_bytes: int = COMPACT_BYTES) -> None:
        self.store = store
        self.path = Path(store.state_dir) / JOURNAL_NAME
        self.compact_bytes = compact_bytes
        self.extras: dict[str, dict[str, Any]] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._handle: Any = None
        self._size = 0
        self._written = 0  # bytes written through this handle, and of those, fsynced
        self._synced = 0
        self._sync_lock = threading.Lock()
        self.change_count = 0
        self._changes: deque[tuple[int, str, str, dict[str, Any]]] = deque(maxlen=CHANGE_FEED)

    @classmethod
    def attach(cls, store: _Store) -> Journal:
        """The journal of `store`'s directory, replayed into the store."""
        journal = cls(store)
        journal._replay()
        return journal

    def _replay(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        self._size = len(data)
        for raw in data.split(b"\n")[:-1]:  # the part after the last newline was never acked
            if not raw.strip():
                continue
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            self._apply(entry)

    def _apply(self, entry: dict[str, Any]) -> None:
        for system, name, record in entry.get("w", ()):
            self.store.collection(system, name).put(record)
            self._dirty.add((system, name))
            self.change_count += 1
            self._changes.append((self.change_count, system, name, record))
        for extra, values in (entry.get("x") or {}).items():
            self.extras.setdefault(extra, {}).update(values)

    def commit(
        self, writes: list[Write], *, extras: dict[str, dict[str, Any]] | None = None
    ) -> None:
        """Write one API write as one line, then make it visible in memory; `sync` makes it
        durable. Callers hold the store's lock.

        A record that breaks the contract raises ContractError before anything is written.
        """
        for system, name, record in writes:
            self.store.collection(system, name).check(record)
        line = _line(writes, extras)
        with self._sync_lock:
            if self._handle is None:
                self._handle = open(self.path, "ab")  # noqa: SIM115 - kept open between writes
        self._handle.write(line)
        self._handle.flush()
        self._size += len(line)
        self._written += len(line)
        self._apply({"w": writes, "x": extras})
        if self._size > self.compact_bytes:
            self.compact()

    def changes_since(self, count: int, system: str) -> list[tuple[str, dict[str, Any]]] | None:
        """The system's records written after change number `count`, oldest first; None when
        the feed no longer reaches back that far. Callers hold the store's lock."""
        if count >= self.change_count:
            return []
        if not self._changes or self._changes[0][0] > count + 1:
            return None
        return [(name, record) for n, s, name, record in self._changes if n > count and s == system]

    @property
    def unsynced(self) -> bool:
        return self._written > self._synced

    async def durable(self) -> None:
        """Await `sync` off the event loop when a write is waiting for it."""
        if self.unsynced:
            await run_in_threadpool(self.sync)

    def sync(self) -> None:
        """fsync what was written so far; a no-op when nothing is waiting for it."""
        with self._sync_lock:
            written = self._written
            if self._handle is None or self._synced >= written:
                return
            os.fsync(self._handle.fileno())
            self._synced = written

    def compact(self) -> None:
        """Write the changed collections into their state files, then start a new journal.

        Callers hold the store's lock."""
        with self._sync_lock:
            self._compact()

    def _compact(self) -> None:
        for system, name in sorted(self._dirty):
            self.store.persist(system, name)
        for system in {system for system, _ in self._dirty}:
            _fsync_dir(Path(self.store.state_dir) / system)
        self._dirty.clear()
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._written = self._synced = 0
        body = _line((), self.extras) if self.extras else b""
        handle, temp = tempfile.mkstemp(prefix=".journal.", dir=self.path.parent)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.path.parent)
        self._size = len(body)

    def close(self) -> None:
        with self._sync_lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
