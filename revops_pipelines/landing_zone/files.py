"""Event files: `<landing dir>/<source>/<yyyy-mm-dd>/<event id>.json`, each written once.

A file appears whole or not at all (temporary file, fsync, then a hard link that
refuses to replace an existing name), so a reader never sees half an event and a
repeated id leaves the first file untouched.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SOURCES: tuple[str, ...] = ("billing", "crm", "erp")

# No separators and no leading dot: a name can never leave `<dir>/<source>/<day>/`.
_EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def valid_event_id(event_id: object) -> bool:
    return isinstance(event_id, str) and _EVENT_ID.match(event_id) is not None


@dataclass(frozen=True, order=True)
class EventFile:
    """One landed event; ordered by day, then name, which is how the sensor walks them."""

    day: str
    source: str
    name: str
    path: Path

    @property
    def event_id(self) -> str:
        return self.name.removesuffix(".json")

    @property
    def key(self) -> str:
        """`<source>/<day>/<event id>.json`: stable, and relative to the landing directory."""
        return f"{self.source}/{self.day}/{self.name}"


def event_path(landing_dir: Path, source: str, event_id: str, *, received: datetime) -> Path:
    if source not in SOURCES or not valid_event_id(event_id):
        raise ValueError(f"not a landing-zone name: {source}/{event_id}")
    day = received.astimezone(UTC).strftime("%Y-%m-%d")
    return Path(landing_dir) / source / day / f"{event_id}.json"


def already_landed(landing_dir: Path, source: str, event_id: str) -> bool:
    """Whether this id was written on any day (a sender may retry for days)."""
    root = Path(landing_dir) / source
    return root.is_dir() and any(
        (day / f"{event_id}.json").exists() for day in root.iterdir() if _DAY.match(day.name)
    )


def write_event(
    landing_dir: Path, source: str, event_id: str, body: bytes, *, received: datetime
) -> Path | None:
    """Write the body exactly as received; None when the id was already there."""
    if already_landed(landing_dir, source, event_id):
        return None
    path = event_path(landing_dir, source, event_id, received=received)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A random name opened exclusively: what mkstemp does, without its Python-side retries.
    temp_name = str(path.parent / f".incoming-{secrets.token_hex(8)}")
    handle = os.open(temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(handle, "wb") as temp:
            temp.write(body)
            temp.flush()
            os.fsync(temp.fileno())
        try:
            os.link(temp_name, path)
        except FileExistsError:
            return None
        _fsync_dir(path.parent)
    finally:
        os.unlink(temp_name)
    return path


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def list_events(landing_dir: Path, *, after: str | None = None) -> list[EventFile]:
    """Every landed event of every source, in (day, name) order; `after` skips days before it.

    Temporary files (leading dot) and anything that is not an event name are ignored.
    """
    found: list[EventFile] = []
    for source in SOURCES:
        root = Path(landing_dir) / source
        if not root.is_dir():
            continue
        for day in root.iterdir():
            if not _DAY.match(day.name) or (after is not None and day.name < after):
                continue
            for entry in day.iterdir():
                name = entry.name
                if name.endswith(".json") and valid_event_id(name.removesuffix(".json")):
                    found.append(EventFile(day.name, source, name, entry))
    return sorted(found)
