"""Where an event's receipt is recorded: the ledger's `webhook_receipt` table, in one place.

The landed file is the event's durable record and what makes a repeat a repeat; the receipt
is written after the sender has its answer, by one thread in batches, so a slow or busy
ledger never holds a request. Receipts still queued when a process dies are recovered from
the files when the receiver starts again (`record_missing`).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from revops_pipelines.landing_zone.files import list_events
from revops_pipelines.ledger.models import WebhookReceipt
from revops_pipelines.ledger.store import Ledger

logger = logging.getLogger("revops_pipelines.landing_zone")

MAX_BATCH = 500


@dataclass(frozen=True)
class Receipt:
    source: str
    event_id: str
    event_type: str | None
    payload: str
    received_at: datetime


def receipt_for(
    source: str, event_id: str, event: dict[str, Any], body: bytes, *, received_at: datetime
) -> Receipt:
    event_type = event.get("type")
    return Receipt(
        source=source,
        event_id=event_id,
        event_type=event_type if isinstance(event_type, str) else None,
        payload=body.decode(errors="replace"),
        received_at=received_at,
    )


def record_receipts(ledger: Ledger, receipts: list[Receipt]) -> None:
    """Insert the receipts in one transaction; one already there is left as it is.

    One statement executed for many rows: compiled once, so a batch holds the interpreter
    only briefly while requests are being answered."""
    if not receipts:
        return
    dialect = sqlite if ledger.engine.dialect.name == "sqlite" else postgresql
    statement = dialect.insert(WebhookReceipt).on_conflict_do_nothing(
        index_elements=["source", "event_id"]
    )
    rows = [
        {
            "source": r.source,
            "event_id": r.event_id,
            "event_type": r.event_type,
            "payload": r.payload,
            "received_at": r.received_at,
        }
        for r in receipts
    ]
    with ledger.engine.begin() as connection:
        connection.execute(statement, rows)
    logger.info("receipts recorded=%s", len(receipts))


def record_missing(ledger: Ledger, landing_dir: Path) -> int:
    """Receipts for landed files that have none (queued when the last receiver stopped)."""
    with ledger.engine.connect() as connection:
        rows = connection.execute(select(WebhookReceipt.source, WebhookReceipt.event_id))
        known = {(source, event_id) for source, event_id in rows}
    missing = []
    for event in list_events(landing_dir):
        if (event.source, event.event_id) in known:
            continue
        try:
            body = event.path.read_bytes()
            stamp = os.stat(event.path).st_mtime
        except FileNotFoundError:
            continue
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = {}
        missing.append(
            receipt_for(
                event.source,
                event.event_id,
                parsed if isinstance(parsed, dict) else {},
                body,
                received_at=datetime.fromtimestamp(stamp, UTC),
            )
        )
    for start in range(0, len(missing), MAX_BATCH):
        record_receipts(ledger, missing[start : start + MAX_BATCH])
    return len(missing)


class ReceiptWriter:
    """One thread that writes queued receipts to the ledger, up to MAX_BATCH at a time."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._queue: queue.Queue[Receipt | None] = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._work, name="revops-receipts", daemon=True)

    def start(self) -> ReceiptWriter:
        self._thread.start()
        return self

    def submit(self, receipt: Receipt) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(receipt)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every submitted receipt is written; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def stop(self) -> None:
        """Write what is queued, then end the thread."""
        self._queue.put(None)
        self._thread.join(timeout=60)

    def _work(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = None in batch
            receipts = [r for r in batch if r is not None]
            try:
                record_receipts(self.ledger, receipts)
            except Exception:
                # The files hold the events: the next start records what is missing.
                logger.exception("receipts not written: %s", len(receipts))
            with self._idle:
                self._pending -= len(receipts)
                self._idle.notify_all()
