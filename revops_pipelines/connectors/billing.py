"""Billing client (Stripe API subset): concurrent full lists by `created` range, then /v1/events.

Stripe embeds only the first page of a nested list (`invoice.lines`, `subscription.items`);
when that page says `has_more`, the client reads the rest from the list's own `url`, so every
record is stored with its whole list.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx

from revops_pipelines.connectors.base import (
    BaseClient,
    Change,
    ConnectorError,
    Page,
    StreamSpec,
    default_error,
    response_body,
)

STRIPE_VERSION = "2026-10-28"

# Every Stripe object carries these; `object` names its type in lists and events.
_COMMON = ("id", "object", "created", "livemode")

# The streams: list path, primary key, change cursor, the fields we know, reading options
# (`object` checks what a list returned, `nested` is an embedded list read whole).
# fmt: off
STREAMS: dict[str, StreamSpec] = {
    spec.name: spec
    for spec in (
        StreamSpec("customer", source="customers", primary_key="id", cursor="created",
                   fields=_COMMON + ("name", "email", "currency", "balance", "delinquent",
                                     "address", "tax_exempt", "metadata"),
                   options={"object": "customer"}),
        StreamSpec("product", source="products", primary_key="id", cursor="created",
                   fields=_COMMON + ("active", "name", "updated", "metadata"),
                   options={"object": "product"}),
        StreamSpec("price", source="prices", primary_key="id", cursor="created",
                   fields=_COMMON + ("product", "currency", "unit_amount", "type", "recurring",
                                     "active", "metadata"),
                   options={"object": "price"}),
        # The list leaves out canceled subscriptions unless asked for all.
        StreamSpec("subscription", source="subscriptions", primary_key="id", cursor="created",
                   fields=_COMMON + ("customer", "status", "currency", "start_date",
                                     "canceled_at", "ended_at", "cancel_at_period_end",
                                     "metadata", "items"),
                   options={"object": "subscription", "params": {"status": "all"},
                            "nested": "items"}),
        StreamSpec("invoice", source="invoices", primary_key="id", cursor="created",
                   fields=_COMMON + ("customer", "number", "status", "currency", "period_start",
                                     "period_end", "subtotal", "total", "total_excluding_tax",
                                     "amount_due", "amount_paid", "amount_remaining",
                                     "total_taxes", "parent", "lines", "status_transitions",
                                     "metadata"),
                   options={"object": "invoice", "nested": "lines"}),
        StreamSpec("invoice_payment", source="invoice_payments", primary_key="id",
                   cursor="created",
                   fields=_COMMON + ("invoice", "amount_paid", "amount_requested", "currency",
                                     "is_default", "status", "payment", "status_transitions"),
                   options={"object": "invoice_payment"}),
        StreamSpec("credit_note", source="credit_notes", primary_key="id", cursor="created",
                   fields=_COMMON + ("invoice", "customer", "currency", "total", "status",
                                     "reason", "metadata"),
                   options={"object": "credit_note"}),
    )
}
# fmt: on

PAGE_LIMIT = 100


@dataclass(frozen=True)
class _Window:
    """Records with `lo <= created <= hi`, after `after` in list order when set."""

    lo: int
    hi: int
    after: str | None = None


class BillingClient(BaseClient):
    """Bearer secret key, pinned API version, cursor lists split by `created` ranges."""

    system = "billing"
    api_version = STRIPE_VERSION

    def __init__(self, base_url: str, *, api_key: str, **options: Any) -> None:
        super().__init__(base_url, **options)
        self._api_key = api_key

    def __repr__(self) -> str:
        return f"BillingClient({self.base_url!r})"

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}", "Stripe-Version": STRIPE_VERSION}

    def _idempotency_header(self) -> str | None:
        return "Idempotency-Key"

    def _error_from_response(
        self, response: httpx.Response, *, record_id: str | None
    ) -> ConnectorError:
        body = response_body(response)
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        code = str(error.get("code") or error.get("type") or f"http_{response.status_code}")
        if response.status_code == 429:
            code = "rate_limited"
        return default_error(
            self.system,
            response,
            code=code,
            message=str(error.get("message") or response.reason_phrase),
            record_id=record_id,
            field=error.get("param") or None,
        )

    def list_page(
        self, endpoint: str, params: dict[str, Any], *, stream: str | None = None
    ) -> dict[str, Any]:
        return self.get_json(f"/v1/{endpoint}", params=params, stream=stream)

    def list_all(
        self, endpoint: str, params: dict[str, Any] | None = None, *, stream: str | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """One cursor walk with `starting_after`, newest first."""
        query = {**(params or {}), "limit": PAGE_LIMIT}
        while True:
            body = self.list_page(endpoint, query, stream=stream)
            data = list(body.get("data") or [])
            yield data
            if not body.get("has_more") or not data:
                return
            query["starting_after"] = data[-1]["id"]

    def retrieve(self, endpoint: str, record_id: str, *, stream: str | None = None) -> Any:
        return self.get_json(f"/v1/{endpoint}/{record_id}", record_id=record_id, stream=stream)

    def list_concurrent(
        self, endpoint: str, params: dict[str, Any] | None = None, *, stream: str | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Every record exactly once, read by `workers` threads over `created` ranges.

        A window whose page says `has_more` continues after its last record; while
        workers are idle the rest is split at a `created` midpoint, the upper half
        keeping the `starting_after` cursor so ties on `created` are never lost.
        """
        base = dict(params or {})
        newest = self.list_page(endpoint, {**base, "limit": 1}, stream=stream)
        data = newest.get("data") or []
        if not data:
            return
        top = int(data[0]["created"])
        pending: list[_Window] = [_Window(0, top)]
        running: dict[Future[tuple[_Window, dict[str, Any]]], _Window] = {}

        def fetch(window: _Window) -> tuple[_Window, dict[str, Any]]:
            query = {
                **base,
                "limit": PAGE_LIMIT,
                "created[gte]": window.lo,
                "created[lte]": window.hi,
            }
            if window.after:
                query["starting_after"] = window.after
            return window, self.list_page(endpoint, query, stream=stream)

        # Fetching runs in its own thread so that storing a batch never stalls requests.
        out: queue.Queue[list[dict[str, Any]] | BaseException | None] = queue.Queue(maxsize=256)
        stop = threading.Event()

        def coordinate() -> None:
            try:
                with ThreadPoolExecutor(max_workers=self.workers) as pool:
                    while (pending or running) and not stop.is_set():
                        while pending and len(running) < self.workers:
                            window = pending.pop()
                            running[pool.submit(fetch, window)] = window
                        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                        for future in done:
                            running.pop(future)
                            window, body = future.result()
                            records = list(body.get("data") or [])
                            if body.get("has_more") and records:
                                pending.extend(self._rest_of(window, records[-1], len(running)))
                            if records:
                                _put(out, records, stop)
                _put(out, None, stop)
            except BaseException as error:  # handed to the reading thread
                _put(out, error, stop)

        thread = threading.Thread(target=coordinate, name=f"billing-{endpoint}", daemon=True)
        thread.start()
        try:
            while True:
                item = out.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join()

    def _rest_of(self, window: _Window, last: dict[str, Any], running: int) -> list[_Window]:
        """The part of `window` after `last`; split in two while workers would be idle."""
        rest_hi = int(last["created"])
        if self.workers - running > 1 and rest_hi > window.lo:
            middle = (window.lo + rest_hi) // 2 + 1
            return [_Window(window.lo, middle - 1), _Window(middle, rest_hi, after=last["id"])]
        return [_Window(window.lo, rest_hi, after=last["id"])]

    def _events_since(self, cursor: dict[str, Any] | None, *, stream: str) -> list[dict[str, Any]]:
        params: dict[str, Any] = {}
        if cursor and cursor.get("created") is not None:
            # `gte` and a list of the ids already seen at that second: events
            # arriving later in the same second are not skipped.
            params["created[gte]"] = int(cursor["created"])
        seen = set((cursor or {}).get("ids") or [])
        events = [e for page in self.list_all("events", params, stream=stream) for e in page]
        return [e for e in events if e.get("id") not in seen]

    def _event_start(self, *, stream: str) -> dict[str, Any]:
        newest = self.list_page("events", {"limit": 1}, stream=stream).get("data") or []
        if not newest:
            return {"created": None, "ids": []}
        top = int(newest[0]["created"])
        same_second = [
            e
            for page in self.list_all("events", {"created[gte]": top}, stream=stream)
            for e in page
        ]
        return self._event_cursor(same_second, None)

    @staticmethod
    def _event_cursor(events: list[dict[str, Any]], previous: dict[str, Any] | None) -> dict:
        if not events:
            return previous or {"created": None, "ids": []}
        top = max(int(e["created"]) for e in events)
        ids = {e["id"] for e in events if int(e["created"]) == top}
        if previous and previous.get("created") == top:
            ids |= set(previous.get("ids") or [])
        return {"created": top, "ids": sorted(ids)}

    def read(self, spec: StreamSpec, *, cursor: dict[str, Any] | None) -> Iterator[Page]:
        """A full list when there is no cursor, else the records named by newer events."""
        params = dict(spec.options.get("params") or {})
        if not cursor:
            # Events before the list starts are already reflected in it.
            start = self._event_start(stream=spec.name)
            for records in self.list_concurrent(spec.source, params, stream=spec.name):
                records = self._with_whole_lists(spec, records)
                yield Page([Change(r, cursor_value=_created(r)) for r in records])
            yield Page([], cursor=start)
            return
        events = sorted(
            self._events_since(cursor, stream=spec.name), key=lambda e: int(e.get("created") or 0)
        )
        yield from self.fetch_notified(spec, events)
        yield Page([], cursor=self._event_cursor(events, cursor))

    def fetch_notified(self, spec: StreamSpec, events: list[dict[str, Any]]) -> Iterator[Page]:
        """The current state of every record of this stream the events name, once each."""
        latest: dict[str, dict[str, Any]] = {}
        for event in sorted(events, key=lambda e: int(e.get("created") or 0)):
            obj = (event.get("data") or {}).get("object") or {}
            if obj.get("object") == spec.options.get("object") and obj.get("id"):
                latest[obj["id"]] = event
        changes = self._refetch(spec, latest)
        for start in range(0, len(changes), 500):
            yield Page(changes[start : start + 500])

    def _refetch(self, spec: StreamSpec, latest: dict[str, dict[str, Any]]) -> list[Change]:
        """An event says what changed; the API says what it is now."""

        def one(item: tuple[str, dict[str, Any]]) -> Change:
            record_id, event = item
            obj = event["data"]["object"]
            when = str(event.get("created"))
            if str(event.get("type", "")).endswith(".deleted"):
                return Change(obj, deleted=True, cursor_value=when)
            try:
                current = self.retrieve(spec.source, record_id, stream=spec.name)
            except ConnectorError as error:
                if error.status == 404:
                    return Change(obj, deleted=True, cursor_value=when)
                raise
            if isinstance(current, dict) and current.get("deleted") is True:
                return Change(obj, deleted=True, cursor_value=when)
            if _has_more(current, spec.options.get("nested")):
                current = self._whole_list(current, spec.options["nested"], stream=spec.name)
            return Change(current, cursor_value=when)

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(one, latest.items()))

    def _with_whole_lists(
        self, spec: StreamSpec, records: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The records, each whose nested list has more than its embedded page read whole."""
        field = spec.options.get("nested")
        partial = [i for i, record in enumerate(records) if _has_more(record, field)]
        if not partial:
            return records
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            whole = pool.map(
                lambda record: self._whole_list(record, field, stream=spec.name),
                [records[i] for i in partial],
            )
            completed = list(records)
            for i, record in zip(partial, whole, strict=True):
                completed[i] = record
        return completed

    def _whole_list(self, record: dict[str, Any], field: str, *, stream: str) -> dict[str, Any]:
        """`record` with `field` holding every entry, read after the embedded ones from its url."""
        listed = record[field]
        url = listed.get("url")
        if not isinstance(url, str) or not url:
            raise ConnectorError(
                system=self.system,
                status=None,
                code="nested_list_without_url",
                message=f"{field} says has_more but gives no url to read the rest from",
                retryable=False,
                record_id=str(record.get("id")),
                field=field,
            )
        path, _, query = url.partition("?")
        params = dict(parse_qsl(query))
        data = list(listed.get("data") or [])
        while True:
            query_params: dict[str, Any] = {**params, "limit": PAGE_LIMIT}
            if data:
                query_params["starting_after"] = data[-1]["id"]
            body = self.get_json(
                path, params=query_params, record_id=record.get("id"), stream=stream
            )
            more = list(body.get("data") or [])
            data.extend(more)
            if not body.get("has_more") or not more:
                break
        return {**record, field: {**listed, "data": data, "has_more": False}}


def _has_more(record: Any, field: str | None) -> bool:
    listed = record.get(field) if field and isinstance(record, dict) else None
    return isinstance(listed, dict) and listed.get("has_more") is True


def _put(out: queue.Queue, item: Any, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _created(record: Any) -> str | None:
    value = record.get("created") if isinstance(record, dict) else None
    return str(value) if value is not None else None


def form_fields(payload: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Stripe's form encoding: nested hashes become `metadata[key]=value`."""
    fields: dict[str, str] = {}
    for key, value in payload.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            fields.update(form_fields(value, name))
        elif isinstance(value, bool):
            fields[name] = "true" if value else "false"
        else:
            fields[name] = "" if value is None else str(value)
    return fields


class BillingWriter(BillingClient):
    """Updates with an Idempotency-Key, and reads to check whether one was applied."""

    ENDPOINTS = {"customer": "customers", "subscription": "subscriptions"}

    def update(
        self, record_type: str, record_id: str, payload: dict[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        endpoint = self.ENDPOINTS[record_type]
        return self.post_json(
            f"/v1/{endpoint}/{record_id}",
            data=form_fields(payload),
            idempotency_key=idempotency_key,
            record_id=record_id,
        )

    def get_record(self, record_type: str, record_id: str) -> dict[str, Any] | None:
        try:
            return self.retrieve(self.ENDPOINTS[record_type], record_id)
        except ConnectorError as error:
            if error.status == 404:
                return None
            raise
