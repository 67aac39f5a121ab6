"""The receiver: `POST /webhooks/<source>`, verified, landed once, answered at once.

A request is answered once its file is durable; its ledger receipt follows on the
receipt writer's thread, so the ledger is never on the request path.

Everything refused is answered 4xx with nothing written, counted by reason and
logged by source and reason only (never the body or a secret).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from revops_pipelines.landing_zone import signatures
from revops_pipelines.landing_zone.files import SOURCES, valid_event_id, write_event
from revops_pipelines.landing_zone.receipts import ReceiptWriter, receipt_for

logger = logging.getLogger("revops_pipelines.landing_zone")

DEFAULT_BODY_LIMIT = 1024 * 1024

REASON_MALFORMED_JSON = "malformed_json"
REASON_NO_ID = "no_id"
REASON_BAD_ID = "bad_id"
REASON_TOO_LARGE = "body_too_large"
REASON_METHOD = "method_not_allowed"
REASON_UNKNOWN_SOURCE = "unknown_source"


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason
        super().__init__(reason)


class ReceiverStats:
    """Counts by outcome; `refused` is keyed by (source, reason)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.accepted: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.refused: Counter[tuple[str, str]] = Counter()

    def count(self, counter: Counter, key: object) -> None:
        with self._lock:
            counter[key] += 1

    def as_dict(self) -> dict[str, object]:
        with self._lock:
            return {
                "accepted": dict(self.accepted),
                "duplicates": dict(self.duplicates),
                "refused": {f"{s}/{r}": n for (s, r), n in sorted(self.refused.items())},
            }


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is known to exceed `limit` (from the header or the stream)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise Refused(413, REASON_TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, REASON_TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)


def _event_id(source: str, body: bytes, headers: Mapping[str, str]) -> tuple[str, dict]:
    try:
        event = json.loads(body)
    except ValueError:
        raise Refused(400, REASON_MALFORMED_JSON) from None
    if not isinstance(event, dict):
        raise Refused(400, REASON_MALFORMED_JSON)
    # Stripe names the event in its body; Standard Webhooks in the `webhook-id` header.
    event_id = event.get("id") if source == "billing" else headers.get("webhook-id")
    if event_id in (None, ""):
        raise Refused(400, REASON_NO_ID)
    if not valid_event_id(event_id):
        raise Refused(400, REASON_BAD_ID)
    return event_id, event


def build_app(
    landing_dir: Path,
    *,
    secrets: Mapping[str, str],
    receipts: ReceiptWriter,
    body_limit: int = DEFAULT_BODY_LIMIT,
    stats: ReceiverStats | None = None,
) -> Starlette:
    """The receiver over `landing_dir`, with each source's signing secret and the receipts."""
    landing_dir = Path(landing_dir)
    verifiers = signatures.verifiers({source: secrets[source] for source in SOURCES})
    stats = stats or ReceiverStats()

    def land(source: str, body: bytes, headers: Mapping[str, str]) -> tuple[str, bool]:
        if source != "billing" and not headers.get("webhook-id"):
            raise Refused(400, REASON_NO_ID)
        try:
            signatures.check(source, body, headers, verifiers=verifiers)
        except signatures.SignatureRefused as refused:
            raise Refused(400, refused.reason) from None
        event_id, event = _event_id(source, body, headers)
        # The file first: a receipt without its file would turn the sender's retry into a loss.
        received = datetime.now(UTC)
        path = write_event(landing_dir, source, event_id, body, received=received)
        if path is not None:
            receipts.submit(receipt_for(source, event_id, event, body, received_at=received))
        return event_id, path is None

    async def receive(request: Request) -> Response:
        source = request.path_params["source"]
        try:
            if source not in SOURCES:
                raise Refused(404, REASON_UNKNOWN_SOURCE)
            if request.method != "POST":
                raise Refused(405, REASON_METHOD)
            body = await _read_body(request, body_limit)
            event_id, duplicate = await run_in_threadpool(land, source, body, request.headers)
        except Refused as refused:
            stats.count(stats.refused, (source, refused.reason))
            logger.warning("refused source=%s reason=%s", source, refused.reason)
            headers = {"Allow": "POST"} if refused.status == 405 else None
            # Closing the connection spares reading the rest of an oversized body.
            if refused.status == 413:
                headers = {"Connection": "close"}
            return JSONResponse(
                {"error": refused.reason}, status_code=refused.status, headers=headers
            )
        stats.count(stats.duplicates if duplicate else stats.accepted, source)
        return JSONResponse({"received": event_id, "duplicate": duplicate})

    async def stats_endpoint(request: Request) -> Response:
        return JSONResponse(stats.as_dict())

    async def not_found(request: Request) -> Response:
        stats.count(stats.refused, ("-", REASON_UNKNOWN_SOURCE))
        return JSONResponse({"error": REASON_UNKNOWN_SOURCE}, status_code=404)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
    app = Starlette(
        routes=[
            Route("/webhooks/{source}", receive, methods=methods),
            Route("/stats", stats_endpoint, methods=["GET"]),
            Route("/{path:path}", not_found, methods=methods),
        ]
    )
    app.state.stats = stats
    return app
