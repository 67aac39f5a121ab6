"""Transport shared by the three clients: rate limit, retries, error mapping, counters.

Each system's client adds its authentication, its error-body mapping and its
pagination; a write with an idempotency key goes through the same `request`.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import tenacity

logger = logging.getLogger("revops_pipelines.connectors")

Sleep = Callable[[float], None]
T = TypeVar("T")


class ConnectorError(Exception):
    """An answer from a source system that the client could not turn into data."""

    def __init__(
        self,
        *,
        system: str,
        status: int | None,
        code: str,
        message: str,
        retryable: bool,
        record_id: str | None = None,
        field: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.system = system
        self.status = status
        self.code = code
        self.message = message
        self.retryable = retryable
        self.record_id = record_id
        self.field = field
        self.retry_after = retry_after
        where = f" record {record_id}" if record_id else ""
        where += f" field {field}" if field else ""
        hint = (
            "retrying may help" if retryable else "fix the request or the data; retrying won't help"
        )
        super().__init__(f"{system} {status} {code}{where}: {message} ({hint})")


@dataclass
class ClientStats:
    """Counters a client keeps for metadata and benchmarks; safe across threads."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, *, requests: int = 0, retries: int = 0, throttled: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries
            self.throttled += throttled

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"requests": self.requests, "retries": self.retries, "throttled": self.throttled}


class RateLimiter:
    """Keeps requests at `rate` per second across all threads that share it.

    Requests are spaced evenly; a turn no thread was ready to take is made up for later,
    up to `catch_up_s` of them (a burst of `rate * catch_up_s` requests, well inside the
    burst an API allows at that rate), so a moment when every thread was busy elsewhere
    does not lose the API's allowance for good.
    """

    def __init__(
        self,
        rate: float,
        *,
        catch_up_s: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._catch_up = catch_up_s
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None
        self._lock = threading.Lock()

    def acquire(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = self._clock()
            slot = now if self._next is None else max(now - self._catch_up, self._next)
            self._next = slot + self._interval
        if slot > now:
            self._sleep(slot - now)


class Allowance:
    """What one system's API allows this process: requests a second, and requests at once.

    Every client of the same system, URL and limits takes its turns from one Allowance
    (`shared_allowance`), so streams of one system read at the same time share the API's
    limit instead of each using all of it.
    """

    def __init__(self, rate: float, max_concurrency: int = 0, *, sleep: Sleep = time.sleep):
        self.limiter = RateLimiter(rate, sleep=sleep)
        self._gate = threading.BoundedSemaphore(max_concurrency) if max_concurrency > 0 else None

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold a concurrency slot (if limited) and wait for the next rate slot."""
        if self._gate is None:
            self.limiter.acquire()
            yield
            return
        with self._gate:
            self.limiter.acquire()
            yield


_shared: weakref.WeakValueDictionary[tuple[Any, ...], Any] = weakref.WeakValueDictionary()
_shared_lock = threading.Lock()


def shared(key: tuple[Any, ...], make: Callable[[], T]) -> T:
    """The one object under `key` in this process, made on first use; it lives as long as
    a client holds it, so clients alive at the same time share it."""
    with _shared_lock:
        found = _shared.get(key)
        if found is None:
            found = make()
            _shared[key] = found
        return found


def shared_allowance(
    system: str, base_url: str, *, rate: float, max_concurrency: int = 0, sleep: Sleep = time.sleep
) -> Allowance:
    """The one Allowance of `system` at `base_url` in this process, made on first use."""
    return shared(
        ("allowance", system, base_url, rate, max_concurrency, sleep),
        lambda: Allowance(rate, max_concurrency, sleep=sleep),
    )


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for all clients: making one reads the CA bundle, ~20 ms each."""
    return httpx.create_ssl_context()


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` is either seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _WaitRetryAfter(tenacity.wait.wait_base):
    """Wait what the server asked for, else exponential backoff with jitter."""

    def __init__(self, *, initial: float, maximum: float) -> None:
        self._backoff = tenacity.wait_exponential_jitter(
            multiplier=initial, max=maximum, jitter=initial
        )
        self._maximum = maximum

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(error, ConnectorError) and error.retry_after is not None:
            return min(error.retry_after, self._maximum)
        return self._backoff(retry_state)


def _is_retryable(error: BaseException) -> bool:
    if isinstance(error, ConnectorError):
        return error.retryable
    return isinstance(error, httpx.TransportError)


@dataclass(frozen=True)
class Change:
    """One record as received, with its tombstone flag and change cursor."""

    record: Any
    deleted: bool = False
    cursor_value: str | None = None


@dataclass(frozen=True)
class Page:
    """A batch of changes; the last page of a read carries the stream's next cursor.

    `replaces` = (parent fields, parent ids): the page holds every child row of
    those parents, so stored children of them that are absent were removed.
    """

    changes: list[Change]
    cursor: dict[str, Any] | None = None
    replaces: tuple[tuple[str, ...], list[str]] | None = None


PageIterator = Iterator[Page]


class BaseClient:
    """httpx transport within the system's shared allowance, with a bounded retry policy.

    `rate_limit` (requests a second) and `max_concurrency` (requests at once, 0 for no
    limit) are the API's allowance, shared with every other client of the same system.
    """

    system: str = "base"
    api_version: str = ""

    def __init__(
        self,
        base_url: str,
        *,
        rate_limit: float = 50.0,
        max_concurrency: int = 0,
        max_attempts: int = 6,
        timeout: float = 30.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        workers: int = 4,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        if not base_url:
            raise ValueError(f"{self.system}: no base URL configured (set REVOPS_*_URL)")
        self.base_url = base_url.rstrip("/")
        self.workers = max(1, workers)
        self.stats = ClientStats()
        self._sleep = sleep
        self._allowance = shared_allowance(
            self.system,
            self.base_url,
            rate=rate_limit,
            max_concurrency=max_concurrency,
            sleep=sleep,
        )
        self._max_attempts = max(1, max_attempts)
        self._wait = _WaitRetryAfter(initial=backoff_initial, maximum=backoff_max)
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            verify=_tls_context(),
            limits=httpx.Limits(max_connections=self.workers + 4),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BaseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Hooks for the system clients.
    def _auth_headers(self) -> dict[str, str]:
        return {}

    def _error_from_response(
        self, response: httpx.Response, *, record_id: str | None
    ) -> ConnectorError:
        raise NotImplementedError

    def _idempotency_header(self) -> str | None:
        return None

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        record_id: str | None = None,
        stream: str | None = None,
    ) -> httpx.Response:
        """Send one request, retried on throttling, 5xx and transport errors; 2xx or raises."""
        extra = dict(headers or {})
        if idempotency_key:
            header = self._idempotency_header()
            if header is None:
                raise ValueError(f"{self.system} has no idempotency header")
            # The same key on every attempt: a retried write is then applied once.
            extra[header] = idempotency_key

        def log_retry(state: tenacity.RetryCallState) -> None:
            self.stats.add(retries=1)
            error = state.outcome.exception() if state.outcome else None
            logger.warning(
                "system=%s stream=%s event=retry method=%s path=%s attempt=%d error=%s",
                self.system,
                stream or "-",
                method,
                httpx.URL(url).path,
                state.attempt_number,
                type(error).__name__ if error else "-",
            )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(_is_retryable),
            before_sleep=log_retry,
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(
            self._send_once,
            method,
            url,
            params=params,
            json=json,
            data=data,
            headers=extra,
            record_id=record_id,
        )

    def _send_once(
        self,
        method: str,
        url: str,
        *,
        params: Any,
        json: Any,
        data: Any,
        headers: dict[str, str],
        record_id: str | None,
    ) -> httpx.Response:
        headers = {**self._auth_headers(), **headers}
        # Built before the turn is taken: a concurrency slot is held only while on the wire.
        request = self._http.build_request(
            method, url, params=params, json=json, data=data, headers=headers
        )
        with self._allowance.turn():
            self.stats.add(requests=1)
            response = self._http.send(request)
        if response.is_success:
            return response
        error = self._error_from_response(response, record_id=record_id)
        if error.code in {"rate_limited", "REQUEST_LIMIT_EXCEEDED"} or response.status_code == 429:
            self.stats.add(throttled=1)
        raise error

    def get_json(self, url: str, **kwargs: Any) -> Any:
        return self._json(self.request("GET", url, **kwargs), record_id=kwargs.get("record_id"))

    def post_json(self, url: str, **kwargs: Any) -> Any:
        return self._json(self.request("POST", url, **kwargs), record_id=kwargs.get("record_id"))

    def _json(self, response: httpx.Response, *, record_id: str | None) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ConnectorError(
                system=self.system,
                status=response.status_code,
                code="invalid_json",
                message=f"answer to {response.request.url.path} is not JSON: {exc}",
                retryable=False,
                record_id=record_id,
            ) from exc


def default_error(
    system: str,
    response: httpx.Response,
    *,
    code: str,
    message: str,
    record_id: str | None,
    field: str | None = None,
) -> ConnectorError:
    """Retry policy shared by all systems: 429, 5xx and 408 may pass on a later attempt."""
    status = response.status_code
    retryable = status in (408, 429) or status >= 500
    return ConnectorError(
        system=system,
        status=status,
        code=code,
        message=message,
        retryable=retryable,
        record_id=record_id,
        field=field,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def response_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def server_time(response: httpx.Response) -> float:
    """The server's clock from the `Date` header (cursor overlaps are relative to it)."""
    value = response.headers.get("Date")
    if value:
        try:
            return email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            pass
    return time.time()


@dataclass(frozen=True)
class StreamSpec:
    """One source stream: where it is read, its key, its change cursor, the fields we know."""

    name: str
    source: str
    primary_key: str
    cursor: str | None
    fields: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
