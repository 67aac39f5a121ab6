"""Refusals in each system's own words: a catch-all for the unexpected, strict request parsing.

A client written against the real API must always get that API's error body, never a
bare `500 Internal Server Error` in text/plain with its keep-alive connection dropped.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from revops_pipelines.sandbox.faults import SystemErrors

logger = logging.getLogger("revops_pipelines.sandbox")

_ASCII_INTEGER = re.compile(r"-?[0-9]{1,18}")


def ascii_integer(text: str | None, *, signed: bool = False) -> int | None:
    """The integer written in ASCII digits, or None (`int()` also takes `١٢`, ` 12`, `1_2`)."""
    if text is None or not _ASCII_INTEGER.fullmatch(text):
        return None
    if text.startswith("-") and not signed:
        return None
    return int(text)


class CatchAll:
    """ASGI middleware: an unexpected error becomes the system's 500 body and a log line."""

    def __init__(self, app: ASGIApp, *, system: str, errors: SystemErrors) -> None:
        self.app = app
        self.system = system
        self.errors = errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            logger.exception(
                "%s sandbox failed on %s %s%s",
                self.system,
                scope.get("method"),
                scope.get("path"),
                _query(scope),
            )
            if started:
                raise  # part of the answer is out; nothing truthful can follow it
            response = self.errors.error(
                500, "server_error", "An unexpected error occurred; it was logged with the request."
            )
            await response(scope, receive, send)


def _query(scope: dict[str, Any]) -> str:
    raw = scope.get("query_string") or b""
    return "?" + raw.decode("latin-1") if raw else ""
