"""Where an event's receipt is recorded: one function, so its store changes in one place."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

logger = logging.getLogger("revops_pipelines.landing_zone")


def record_receipt(
    *, source: str, event_id: str, path: Path | None, received: datetime, duplicate: bool
) -> None:
    """Note that an event was received: written to `path`, or a repeat of an id already landed."""
    logger.info(
        "receipt source=%s event_id=%s duplicate=%s received=%s file=%s",
        source,
        event_id,
        duplicate,
        received.isoformat(),
        path.name if path is not None else "-",
    )
