"""The extraction loop: read a stream's changes through its client, store them in DuckDB.

Streams are read at the same time, each in its own thread through its own client; the
clients of one system share that system's allowance (`connectors.base.shared_allowance`),
and one lock lets one stream write DuckDB at a time.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb

from revops_pipelines.clients import client_from_settings
from revops_pipelines.connectors import billing, crm, erp
from revops_pipelines.connectors.base import BaseClient, Change, Page, StreamSpec
from revops_pipelines.raw import store
from revops_pipelines.raw.contract import find_breach
from revops_pipelines.raw.store import QuarantinedRecord, RawRow
from revops_pipelines.settings import Settings

logger = logging.getLogger("revops_pipelines.raw")

# System → (stream table, fields every record may carry beyond the declared ones).
STREAM_TABLES: dict[str, tuple[dict[str, StreamSpec], tuple[str, ...]]] = {
    "crm": (crm.STREAMS, crm.RECORD_EXTRAS),
    "billing": (billing.STREAMS, ()),
    "erp": (erp.STREAMS, erp.RECORD_EXTRAS),
}


class Stopped(Exception):
    """The run was stopped before the stream was read to its end; its cursor did not move."""


class StreamReader(Protocol):
    system: str
    api_version: str

    def read(self, spec: StreamSpec, *, cursor: dict[str, Any] | None) -> Any: ...

    def fetch_notified(self, spec: StreamSpec, notified: list[Any]) -> Any: ...


@dataclass
class StreamStats:
    """What one extraction of one stream did, for metadata, logs and benchmarks."""

    stream: str
    fetched: int = 0
    new: int = 0
    changed: int = 0
    deleted: int = 0
    quarantined: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    elapsed_s: float = 0.0
    row_count: int = 0
    unknown_fields: list[str] = field(default_factory=list)
    cursor: dict[str, Any] | None = None
    full_refresh: bool = False


def stream_key(system: str, stream: str) -> str:
    return f"{system}_{stream}".lower()


def _dump(record: Any) -> str:
    # NaN and Infinity are no JSON: refused here rather than stored as a payload DuckDB rejects.
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _check(
    change: Change, spec: StreamSpec, *, key: str, known: frozenset[str], unknown: set[str]
) -> RawRow | QuarantinedRecord:
    """A row for the raw table, or the record set aside with the field that breaks the contract."""
    record = change.record
    if not isinstance(record, dict):
        return QuarantinedRecord(f"not a JSON object: {type(record).__name__}", _safe(record))
    record_id = record.get(spec.primary_key)
    if record_id is None or record_id == "":
        return QuarantinedRecord(
            f"missing {spec.primary_key}", _safe(record), field=spec.primary_key
        )
    if not isinstance(record_id, str) or not record_id.strip():
        return QuarantinedRecord(
            f"{spec.primary_key}: not a non-blank string",
            _safe(record),
            field=spec.primary_key,
            value=_safe(record_id),
        )
    try:
        payload = _dump(record)
    except ValueError:
        return QuarantinedRecord(
            "holds NaN or Infinity, which JSON has not", _safe(record), record_id=record_id
        )
    breach = find_breach(key, record, deleted=change.deleted)
    if breach is not None:
        return QuarantinedRecord(
            f"{breach.field}: {breach.reason}",
            payload,
            record_id=record_id,
            field=breach.field,
            value=breach.value_text(),
        )
    unknown.update(name for name in record if name not in known)
    return RawRow(record_id, payload, change.cursor_value, change.deleted)


def _safe(record: Any) -> str:
    try:
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(record)


def extract_stream(
    client: StreamReader,
    con: duckdb.DuckDBPyConnection,
    stream: str,
    *,
    run_id: str,
    full_refresh: bool = False,
    batch_size: int = 5000,
    notified: list[Any] | None = None,
    writer: AbstractContextManager[Any] | None = None,
    stop: threading.Event | None = None,
) -> StreamStats:
    """Read one stream since its stored cursor (all of it on a full refresh) and upsert it.

    Rows are committed in batches without moving the cursor; the cursor goes in
    with the last batch, so a crash at any point loses nothing and a rerun
    re-reads from the old cursor (upserts make the repeats harmless).

    With `notified` (what webhooks named: billing events, else record ids) only those
    records are fetched, as they are now, and the cursor stays where it is. `writer` is
    held around every use of `con`, so streams in other threads can share the file;
    `stop`, once set, ends the read at the next page with `Stopped`.
    """
    system = client.system
    specs, extras = STREAM_TABLES[system]
    spec = specs[stream]
    key = stream_key(system, stream)
    known = frozenset(spec.fields) | frozenset(extras)
    writer = writer or nullcontext()
    with writer:
        store.ensure_tables(con, key)
        cursor = None if full_refresh or notified is not None else store.read_cursor(con, key)
        # A read of the notified records only is not a full read: it says nothing of the others.
        full_read = cursor is None and notified is None
        if full_read:
            store.start_full_read(con, key)
    before = client.stats.snapshot() if isinstance(client, BaseClient) else {}
    started = time.monotonic()
    stats = StreamStats(stream=key, full_refresh=cursor is None and notified is None)
    unknown: set[str] = set()
    rows: list[RawRow] = []
    bad: list[QuarantinedRecord] = []

    unidentified = False  # a quarantined record of this read had no id
    # Batches are stored on a thread of their own, in order, one at a time: the next batch
    # is read and checked while the last one is written (DuckDB works without the GIL).
    storing = ThreadPoolExecutor(1, thread_name_prefix="store")
    stored: Future[None] | None = None

    def write(batch: list[RawRow], quarantined: list[QuarantinedRecord], **options: Any) -> None:
        with writer:
            result = store.write_batch(
                con,
                key,
                batch,
                run_id=run_id,
                api_version=client.api_version,
                quarantined=quarantined,
                full_read=full_read,
                **options,
            )
        stats.new += result.new
        stats.changed += result.changed
        stats.deleted += result.deleted
        stats.quarantined += len(quarantined)

    def flush(*, cursor: dict[str, Any] | None = None, replaces: Any = None) -> None:
        nonlocal unidentified, stored, rows, bad
        unidentified = unidentified or any(q.record_id is None for q in bad)
        if stored is not None:
            stored.result()  # the batch before failed: stop here, with its error
        stored = storing.submit(
            write,
            rows,
            bad,
            replaces=replaces,
            cursor=cursor,
            # The cursor ends a read. A quarantined record without an id may be any stored
            # one: then nothing is tombstoned.
            end_full_read=full_read and cursor is not None and not unidentified,
        )
        rows, bad = [], []

    pages = (
        client.read(spec, cursor=cursor)
        if notified is None
        else client.fetch_notified(spec, notified)
    )
    page: Page
    try:
        for page in pages:
            if stop is not None and stop.is_set():
                raise Stopped(f"{key}: stopped before its end; the stored cursor is unchanged")
            for change in page.changes:
                stats.fetched += 1
                checked = _check(change, spec, key=key, known=known, unknown=unknown)
                (rows if isinstance(checked, RawRow) else bad).append(checked)
            if page.replaces is not None:
                # Quarantined children still count as present: never tombstone on bad data.
                flush(replaces=None if bad else page.replaces)
            if page.cursor is not None:
                flush(cursor=page.cursor)
                stats.cursor = page.cursor
            elif len(rows) + len(bad) >= batch_size:
                flush()
        if rows or bad:
            flush()
        if stored is not None:
            stored.result()
    finally:
        storing.shutdown()  # a write under way ends before the stream does

    after = client.stats.snapshot() if isinstance(client, BaseClient) else {}
    for name in ("requests", "retries", "throttled"):
        setattr(stats, name, after.get(name, 0) - before.get(name, 0))
    stats.elapsed_s = round(time.monotonic() - started, 3)
    with writer:
        stats.row_count = store.row_count(con, key)
    stats.unknown_fields = sorted(unknown)
    logger.info(
        "system=%s stream=%s fetched=%d new=%d changed=%d deleted=%d quarantined=%d "
        "requests=%d retries=%d throttled=%d elapsed_s=%.3f unknown_fields=%s",
        system,
        stream,
        stats.fetched,
        stats.new,
        stats.changed,
        stats.deleted,
        stats.quarantined,
        stats.requests,
        stats.retries,
        stats.throttled,
        stats.elapsed_s,
        ",".join(stats.unknown_fields) or "-",
    )
    return stats


def extract_streams(
    client_for: Callable[[str], BaseClient],
    con: duckdb.DuckDBPyConnection,
    streams: Sequence[tuple[str, str]],
    *,
    run_id: str,
    full_refresh: bool = False,
    notified: Mapping[str, list[Any]] | None = None,
) -> Iterator[tuple[str, StreamStats | Exception]]:
    """Read the (system, stream) pairs at the same time; yield each key with its stats, or
    with its error, as it finishes. One stream's failure does not stop the others.
    `notified` maps stream keys to what webhooks named (see `extract_stream`).

    Each stream gets its own client from `client_for(system)` (its own counters) and its
    own cursor on `con`; the writes take turns. Closing the iterator early stops the
    streams still reading at their next page.
    """
    writer = threading.Lock()
    stop = threading.Event()

    def read(system: str, name: str, own: duckdb.DuckDBPyConnection) -> StreamStats:
        client = client_for(system)
        try:
            return extract_stream(
                client,
                own,
                name,
                run_id=run_id,
                full_refresh=full_refresh,
                notified=(notified or {}).get(stream_key(system, name)),
                writer=writer,
                stop=stop,
            )
        finally:
            client.close()
            own.close()

    with ThreadPoolExecutor(max(1, len(streams)), thread_name_prefix="extract") as pool:
        futures = {
            pool.submit(read, system, name, con.cursor()): stream_key(system, name)
            for system, name in streams
        }
        try:
            for future in as_completed(futures):
                error = future.exception()
                if error is not None and not isinstance(error, Exception):
                    raise error
                yield futures[future], error or future.result()
        finally:
            stop.set()


def extract_all(
    settings: Settings,
    duckdb_path: str | Path,
    *,
    run_id: str,
    full_refresh: bool = False,
    streams: list[str] | None = None,
) -> dict[str, StreamStats]:
    """Every stream (or the named `raw` stream keys) of all three systems, read at the same
    time; raises after all have finished if any failed."""
    wanted = [
        (system, name)
        for system, (specs, _) in STREAM_TABLES.items()
        for name in specs
        if streams is None or stream_key(system, name) in streams
    ]
    results: dict[str, StreamStats] = {}
    failures: dict[str, Exception] = {}
    Path(duckdb_path).parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(duckdb_path)) as con:
        for key, outcome in extract_streams(
            lambda system: client_from_settings(settings, system),
            con,
            wanted,
            run_id=run_id,
            full_refresh=full_refresh,
        ):
            if isinstance(outcome, Exception):
                failures[key] = outcome
            else:
                results[key] = outcome
    if failures:
        raise ExtractError(failures)
    return results


class ExtractError(Exception):
    """Streams that failed, with their errors; the other streams were stored."""

    def __init__(self, failures: dict[str, Exception]) -> None:
        self.failures = failures
        lines = [f"{key}: {error}" for key, error in sorted(failures.items())]
        super().__init__(f"{len(failures)} stream(s) failed:\n" + "\n".join(lines))
