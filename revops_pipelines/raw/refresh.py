"""Fetch-on-notify: which raw streams a batch of landed events touches, and what to fetch.

An event says what changed; the system says what it is now. So a late, repeated or
out-of-order event can only make the reader fetch the current state once more.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from revops_pipelines.connectors.base import StreamSpec
from revops_pipelines.landing_zone.files import list_events
from revops_pipelines.landing_zone.notices import Notice, read_notice
from revops_pipelines.raw import store
from revops_pipelines.raw.extract import STREAM_TABLES, stream_key


def _names(system: str, spec: StreamSpec, record_type: str) -> bool:
    if system == "billing":
        return spec.options.get("object") == record_type
    if system == "crm":
        return spec.source == record_type
    return record_type == spec.options.get("record_type", spec.source)


def _streams(system: str, record_type: str) -> list[StreamSpec]:
    """The streams holding records of `record_type` (Stripe object, sObject, ERP record type)."""
    specs = STREAM_TABLES[system][0]
    named = [spec for spec in specs.values() if _names(system, spec, record_type)]
    if system == "erp" and any(spec.source == "transaction" for spec in named):
        # A transaction's lines and links have no change column: re-read them with it.
        named += [spec for spec in specs.values() if "parent_fields" in spec.options]
    return named


def streams_named(notices: list[Notice]) -> dict[str, list[Notice]]:
    """Raw stream key → the notices that name one of its records."""
    by_stream: dict[str, list[Notice]] = defaultdict(list)
    for notice in notices:
        for spec in _streams(notice.source, notice.object):
            by_stream[stream_key(notice.source, spec.name)].append(notice)
    return dict(by_stream)


def streams_written(writes: Iterable[tuple[str, str]]) -> list[str]:
    """Raw stream keys that hold the (system, record type) pairs a push wrote."""
    return sorted(
        {
            stream_key(system, spec.name)
            for system, record_type in writes
            if system in STREAM_TABLES
            for spec in _streams(system, record_type)
        }
    )


def notified_for(system: str, notices: list[Notice]) -> list[Any]:
    """What the system's client fetches: billing reads the events, the others the ids."""
    if system == "billing":
        return [notice.event for notice in notices]
    return sorted({notice.record_id for notice in notices})


def webhook_coverage(
    con: duckdb.DuckDBPyConnection, landing_dir: Path, *, since: datetime
) -> dict[str, dict[str, int]]:
    """Per source: records changed in raw since `since`, how many events named, how many not.

    `only_polled` are changes that no landed webhook named: found only because the hourly
    run reads each system's change cursor. Streams without a change column are left out.
    """
    named: set[tuple[str, str]] = set()
    since_ns = int(since.timestamp() * 1e9)
    for event in list_events(landing_dir, after=(since - timedelta(days=1)).strftime("%Y-%m-%d")):
        if event.path.stat().st_mtime_ns < since_ns:
            continue
        notice = read_notice(event.path, event.source)
        if notice is not None:
            named |= {(key, notice.record_id) for key in streams_named([notice])}
    existing = {
        row[0]
        for row in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw'"
        ).fetchall()
    }
    coverage: dict[str, dict[str, int]] = {}
    for system, (specs, _) in STREAM_TABLES.items():
        changed: set[tuple[str, str]] = set()
        for spec in specs.values():
            key = stream_key(system, spec.name)
            if spec.cursor is None or key not in existing:
                continue
            rows = con.execute(
                f"SELECT id FROM {store.table_name(key)} WHERE extracted_at >= ?", [since]
            ).fetchall()
            changed |= {(key, row[0]) for row in rows}
        coverage[system] = {
            "changed": len(changed),
            "named_by_webhooks": len(changed & named),
            "only_polled": len(changed - named),
        }
    return coverage
