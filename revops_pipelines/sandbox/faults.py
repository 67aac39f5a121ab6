"""Faults the sandbox injects: rate limits, server errors, latency, lost replies, webhook mishaps.

One ASGI middleware serves the three systems; each system supplies its own error
bodies through `SystemErrors`, so a client sees the failure the real system would send.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

from starlette.responses import Response

SYSTEMS: tuple[str, ...] = ("crm", "billing", "erp")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class FaultSpecError(ValueError):
    """A `--faults` or `--rate-limit` value that cannot be understood."""


def retry_after_header(seconds: float) -> str:
    """Retry-After as HTTP defines it: whole seconds, at least one."""
    return str(max(1, math.ceil(seconds)))


class SystemErrors(Protocol):
    """How one system words an error; each system module provides one as `ERRORS`."""

    def error(self, status: int, code: str, message: str) -> Response: ...

    def rate_limited(self, retry_after: float) -> Response: ...


@dataclass(frozen=True)
class FaultSpec:
    """Faults for one system; the defaults inject nothing."""

    error_rate: float = 0.0
    latency_ms: float = 0.0
    token_ttl_s: float | None = None
    lost_reply_rate: float = 0.0
    # Outbound webhooks: a share never sent, sent twice, held back so later ones pass it,
    # and a delay before every delivery.
    webhook_drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_reorder_rate: float = 0.0
    webhook_delay_ms: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "error_rate",
            "lost_reply_rate",
            "webhook_drop_rate",
            "webhook_duplicate_rate",
            "webhook_reorder_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise FaultSpecError(f"{name} must be between 0 and 1, got {value}")
        for name in ("latency_ms", "webhook_delay_ms"):
            if getattr(self, name) < 0:
                raise FaultSpecError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.token_ttl_s is not None and self.token_ttl_s <= 0:
            raise FaultSpecError(f"token_ttl_s must be positive, got {self.token_ttl_s}")


_KEYS = {f.name for f in fields(FaultSpec)}


def parse_faults(spec: str | None) -> dict[str, FaultSpec]:
    """`error_rate=0.1,billing.latency_ms=50` → a FaultSpec per system.

    A key without a system prefix applies to all three; a prefixed key overrides it
    for that system whatever the order.
    """
    shared: dict[str, float] = {}
    per_system: dict[str, dict[str, float]] = {system: {} for system in SYSTEMS}
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        key, sep, raw_value = part.partition("=")
        if not sep:
            raise FaultSpecError(f"fault {part!r} is not key=value (e.g. error_rate=0.1)")
        system, dot, name = key.strip().rpartition(".")
        if dot and system not in SYSTEMS:
            raise FaultSpecError(f"fault {part!r}: unknown system {system!r}, use {SYSTEMS}")
        if name not in _KEYS:
            raise FaultSpecError(f"fault {part!r}: unknown key {name!r}, use {sorted(_KEYS)}")
        try:
            value = float(raw_value)
        except ValueError:
            raise FaultSpecError(f"fault {part!r}: {raw_value!r} is not a number") from None
        (per_system[system] if dot else shared)[name] = value
    return {system: FaultSpec(**{**shared, **per_system[system]}) for system in SYSTEMS}


_RATE = re.compile(r"^\s*(\w+)\s*=\s*([0-9]*\.?[0-9]+)\s*(?:/\s*(s|sec|second|m|min|minute))?\s*$")


def parse_rate_limits(items: Iterable[str]) -> dict[str, float]:
    """`["billing=100/s", "crm=600/min"]` → requests per second by system."""
    limits: dict[str, float] = {}
    for item in items:
        match = _RATE.match(item)
        if not match:
            raise FaultSpecError(f"rate limit {item!r} is not SYSTEM=N/s (e.g. billing=100/s)")
        system, number, unit = match.groups()
        if system not in SYSTEMS:
            raise FaultSpecError(f"rate limit {item!r}: unknown system {system!r}, use {SYSTEMS}")
        rate = float(number) / (60.0 if unit and unit.startswith("m") else 1.0)
        if rate <= 0:
            raise FaultSpecError(f"rate limit {item!r} must be positive")
        limits[system] = rate
    return limits


def parse_concurrency(items: Iterable[str]) -> dict[str, int]:
    """`["erp=5"]` → requests a system serves at once; only the ERP enforces a limit."""
    limits: dict[str, int] = {}
    for item in items:
        system, sep, number = item.partition("=")
        system = system.strip()
        if not sep or not number.strip().isdigit() or int(number) < 1:
            raise FaultSpecError(f"concurrency {item!r} is not SYSTEM=N with N >= 1 (e.g. erp=5)")
        if system != "erp":
            raise FaultSpecError(f"concurrency {item!r}: only the erp limits concurrent requests")
        limits[system] = int(number)
    return limits


class TokenBucket:
    """Allows `rate` requests a second on average with bursts up to `burst`."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """Take a token; 0.0 when allowed, else the seconds until one is available."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate


class FaultMiddleware:
    """Concurrency and rate limits, then latency, then random 5xx or a lost reply.

    `max_in_flight` counts a request from arrival to the last byte of its answer, latency
    included, as an account's concurrency limit does; above it the request is refused as
    throttled.
    `served` and `refused` count requests at the server, so tests can check a client's
    pace where the API sees it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        system_errors: SystemErrors,
        rate_limit: float | None,
        faults: FaultSpec,
        seed: int | None,
        max_in_flight: int | None = None,
    ) -> None:
        self.app = app
        self.errors = system_errors
        self.faults = faults
        self.bucket = TokenBucket(rate_limit) if rate_limit else None
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.served = 0
        self.refused = 0
        self._random = random.Random(seed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.max_in_flight is None:
            await self._serve(scope, receive, send)
            return
        # One event loop serves the app: the counter needs no lock.
        if self.in_flight >= self.max_in_flight:
            self.refused += 1
            await self.errors.rate_limited(1.0)(scope, receive, send)
            return
        self.in_flight += 1
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self.in_flight -= 1

        async def answer(message: Message) -> None:
            # Free once the last byte is handed over: a client holding the whole answer may
            # send its next request at once, whatever the app still does after it.
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                release()
            await send(message)

        try:
            await self._serve(scope, receive, answer)
        finally:
            release()

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.bucket is not None:
            wait = self.bucket.take()
            if wait > 0:
                self.refused += 1
                await self.errors.rate_limited(wait)(scope, receive, send)
                return
        self.served += 1
        if self.faults.latency_ms <= 0:
            await self._answer(scope, receive, send)
            return
        # The latency is the time an answer takes, the app's own work included, as a real
        # API's response time is: the answer is held until then, not delayed after it.
        loop = asyncio.get_running_loop()
        due = loop.time() + self.faults.latency_ms / 1000.0
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await asyncio.sleep(max(0.0, due - loop.time()))
                for part in held:
                    await send(part)

        await self._answer(scope, receive, hold)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        faults = self.faults
        if faults.error_rate > 0 and self._random.random() < faults.error_rate:
            status = self._random.choice((500, 503))
            await self._fail(status, scope, receive, send)
            return
        if (
            faults.lost_reply_rate > 0
            and scope["method"] in WRITE_METHODS
            and self._random.random() < faults.lost_reply_rate
        ):
            await self.app(scope, receive, _discard)
            await self._fail(503, scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _fail(self, status: int, scope: Scope, receive: Receive, send: Send) -> None:
        if status == 500:
            response = self.errors.error(500, "server_error", "Injected fault: internal error.")
        else:
            response = self.errors.error(
                503, "service_unavailable", "Injected fault: service unavailable, retry later."
            )
        await response(scope, receive, send)


async def _discard(message: Message) -> None:
    """Swallows the reply of a write that was applied but whose answer is 'lost'."""
