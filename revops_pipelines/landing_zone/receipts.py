"""Where an event's receipt is recorded: the ledger's `webhook_receipt` table, in one place."""

from __future__ import annotations

import logging
from typing import Any

from revops_pipelines.ledger.store import Ledger

logger = logging.getLogger("revops_pipelines.landing_zone")


def record_receipt(
    ledger: Ledger, *, source: str, event_id: str, event: dict[str, Any], body: bytes
) -> bool:
    """Keep the receipt of a landed event; False when the ledger had it already."""
    event_type = event.get("type")
    new = ledger.receive_webhook(
        source=source,
        event_id=event_id,
        event_type=event_type if isinstance(event_type, str) else None,
        payload=body.decode(),
    )
    logger.info("receipt source=%s event_id=%s new=%s", source, event_id, new)
    return new
