"""What a landed event names, and which landed events are new since a reader's cursor.

An event is only a hint: it names a record (system, object, id) that the reader then
fetches from its system. Billing events carry the whole Stripe event (which the billing
client reads itself); the CRM and the ERP send `{"type", "data": {"object", "id"}}`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from revops_pipelines.landing_zone.files import EventFile, list_events

logger = logging.getLogger("revops_pipelines.landing_zone")

# A file's mtime is set before it is linked into place; files this much older than the newest
# seen are still checked by name, so one that appears late is never skipped.
SETTLE_NS = 60 * 1_000_000_000


@dataclass(frozen=True)
class Notice:
    """One landed event: the record it names, and the event itself."""

    path: str
    source: str
    object: str
    record_id: str
    event: dict[str, Any]


def read_notice(path: Path | str, source: str) -> Notice | None:
    """The record a landed event names; None (and a warning) when it names none."""
    try:
        event = json.loads(Path(path).read_bytes())
        data = event["data"]
        if source == "billing":
            obj, record_id = data["object"]["object"], data["object"]["id"]
        else:
            obj, record_id = data["object"], data["id"]
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("landed event names no record: %s", Path(path).name)
        return None
    if not isinstance(obj, str) or not isinstance(record_id, str | int) or record_id == "":
        logger.warning("landed event names no record: %s", Path(path).name)
        return None
    return Notice(str(path), source, obj, str(record_id), event)


def pending_events(
    landing_dir: Path, cursor: dict[str, Any] | None
) -> tuple[list[EventFile], dict[str, Any]]:
    """Events landed since `cursor` (all of them without one), and the cursor after them.

    The cursor is `{"since_ns", "seen"}`: files older than `since_ns` are done, and
    `seen` names the done files from `since_ns` on. It moves only by what was returned.
    """
    since = int((cursor or {}).get("since_ns") or 0)
    seen = set((cursor or {}).get("seen") or [])
    first_day = None
    if since:
        moment = datetime.fromtimestamp((since - SETTLE_NS) / 1e9, UTC) - timedelta(days=1)
        first_day = moment.strftime("%Y-%m-%d")
    current: list[tuple[int, EventFile]] = []
    for event in list_events(landing_dir, after=first_day):
        try:
            stamp = os.stat(event.path).st_mtime_ns
        except FileNotFoundError:
            continue
        if stamp >= since:
            current.append((stamp, event))
    current.sort(key=lambda item: (item[0], item[1].key))
    new = [event for _, event in current if event.key not in seen]
    if not current:
        return new, {"since_ns": since, "seen": sorted(seen)}
    next_since = max(since, current[-1][0] - SETTLE_NS)
    keep = sorted(event.key for stamp, event in current if stamp >= next_since)
    return new, {"since_ns": next_since, "seen": keep}
