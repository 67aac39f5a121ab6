"""The billing sandbox: the subset of the Stripe API (version 2026-10-28) the pipeline uses.

Lists page like Stripe (newest first, `starting_after` / `ending_before` cursors); nested
lists (`invoice.lines`, `subscription.items`) embed their first 10 entries, and the rest come
from `/v1/invoices/{id}/lines` and `/v1/subscription_items?subscription=<id>` like Stripe's;
writes are form-encoded and idempotent by `Idempotency-Key`, errors carry Stripe's
`{"error": {...}}` body and a `Request-Id`, so the official `stripe` package works.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from revops_pipelines.sandbox.contract import ContractError
from revops_pipelines.sandbox.errors import CatchAll, ascii_integer
from revops_pipelines.sandbox.faults import FaultSpec, retry_after_header
from revops_pipelines.sandbox.state import Credentials, StateStore
from revops_pipelines.sandbox.stripe_lists import (
    OrderedView,
    PageRequest,
    UnknownCursor,
    embedded,
    encode,
    encoded_list,
    list_body,
    page,
    page_sequence,
)

API_VERSION = "2026-10-28"
SYSTEM = "billing"
IDEMPOTENCY_KEY_MAX = 255
IDEMPOTENCY_EXTRA = "billing.idempotency"
METADATA_KEYS_MAX = 50
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 500
_ALPHABET = string.ascii_letters + string.digits

Getter = Callable[[dict[str, Any]], Any]


def _field(name: str) -> Getter:
    return lambda record: record.get(name)


def _invoice_subscription(record: dict[str, Any]) -> Any:
    details = (record.get("parent") or {}).get("subscription_details") or {}
    return details.get("subscription")


@dataclass(frozen=True)
class Resource:
    """One list endpoint: its state file, object name and the filters it accepts.

    `nested`: the field holding an embedded list (Stripe embeds its first page only).
    """

    collection: str
    object_name: str
    filters: dict[str, Getter]
    statuses: frozenset[str] = frozenset()
    nested: str | None = None


RESOURCES: dict[str, Resource] = {
    "customers": Resource("customers", "customer", {"email": _field("email")}),
    "products": Resource("products", "product", {"active": _field("active")}),
    "prices": Resource(
        "prices",
        "price",
        {
            "product": _field("product"),
            "currency": _field("currency"),
            "type": _field("type"),
            "active": _field("active"),
        },
    ),
    "subscriptions": Resource(
        "subscriptions",
        "subscription",
        {"customer": _field("customer"), "status": _field("status")},
        frozenset(
            {
                "active",
                "all",
                "canceled",
                "ended",
                "incomplete",
                "incomplete_expired",
                "past_due",
                "paused",
                "trialing",
                "unpaid",
            }
        ),
        nested="items",
    ),
    "invoices": Resource(
        "invoices",
        "invoice",
        {
            "customer": _field("customer"),
            "status": _field("status"),
            "subscription": _invoice_subscription,
        },
        frozenset({"draft", "open", "paid", "uncollectible", "void"}),
        nested="lines",
    ),
    "invoice_payments": Resource(
        "invoice_payments",
        "invoice_payment",
        {"invoice": _field("invoice"), "status": _field("status")},
        frozenset({"open", "paid", "canceled"}),
    ),
    "credit_notes": Resource(
        "credit_notes",
        "credit_note",
        {"invoice": _field("invoice"), "customer": _field("customer")},
    ),
    "events": Resource("events", "event", {"type": _field("type")}),
}

_BOOLEAN_FILTERS = frozenset({"active"})
_PAGING = frozenset({"limit", "starting_after", "ending_before"})
_CREATED = {"created", "created[gte]", "created[gt]", "created[lte]", "created[lt]"}

CUSTOMER_FIELDS = frozenset(
    {"name", "email", "description", "phone", "address", "metadata", "tax_exempt"}
)
ADDRESS_FIELDS = frozenset({"line1", "line2", "city", "state", "postal_code", "country"})
SUBSCRIPTION_FIELDS = frozenset({"metadata", "cancel_at_period_end", "description"})


class StripeError(Exception):
    """An answer in Stripe's error shape; raised inside handlers, turned into a response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        super().__init__(f"billing {status} {type_} {code or ''} {param or ''}: {message}")


def _request_id() -> str:
    return "req_" + "".join(secrets.choice(_ALPHABET) for _ in range(14))


def _new_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(14))


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = {"Request-Id": _request_id(), "Stripe-Version": API_VERSION}
    if extra:
        headers.update(extra)
    return headers


def error_response(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"error": {"type": type_, "code": code, "message": message, "param": param}}
    return Response(
        json.dumps(body),
        status_code=status,
        media_type="application/json",
        headers=_headers(headers),
    )


class BillingErrors:
    """Stripe's error bodies for the fault layer."""

    def error(self, status: int, code: str, message: str) -> Response:
        type_ = "api_error" if status >= 500 else "invalid_request_error"
        return error_response(status, message, type_=type_, code=code)

    def rate_limited(self, retry_after: float) -> Response:
        return error_response(
            429,
            "Too many requests hit the API too quickly. Retry after the delay given.",
            code="rate_limit",
            headers={"Retry-After": retry_after_header(retry_after)},
        )


ERRORS = BillingErrors()


def _json(body: bytes, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body, status_code=status, media_type="application/json", headers=_headers(headers)
    )


# ---------------------------------------------------------------- request parsing


def parse_form(body: bytes) -> dict[str, Any]:
    """Stripe's form encoding: `metadata[key]=v`, `address[city]=v`, `expand[]=v`."""
    result: dict[str, Any] = {}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise StripeError(400, "The request body is not valid UTF-8.") from None
    for raw_key, value in parse_qsl(text, keep_blank_values=True):
        head, _, rest = raw_key.partition("[")
        path = [head] + ([part.rstrip("]") for part in rest.split("[")] if rest else [])
        append = len(path) > 1 and path[-1] == ""
        if append:
            path.pop()
        target = result
        for segment in path[:-1]:
            child = target.get(segment)
            if not isinstance(child, dict):
                child = target[segment] = {}
            target = child
        last = path[-1]
        if append:
            existing = target.get(last)
            target[last] = [*existing, value] if isinstance(existing, list) else [value]
        else:
            target[last] = value
    return result


def _int_param(params: dict[str, str], name: str) -> int:
    raw = params[name]
    value = ascii_integer(raw, signed=True)
    if value is None:
        raise StripeError(400, f"Invalid integer: {raw}", param=name)
    return value


def _paging(params: dict[str, str]) -> tuple[int, str | None, str | None]:
    """`limit` (1-100, default 10) and at most one of `starting_after` / `ending_before`."""
    limit = 10
    if "limit" in params:
        limit = _int_param(params, "limit")
        if limit < 1:
            raise StripeError(400, "This value must be greater than or equal to 1.", param="limit")
        if limit > 100:
            raise StripeError(400, "This value must be less than or equal to 100.", param="limit")
    starting_after = params.get("starting_after") or None
    ending_before = params.get("ending_before") or None
    if starting_after and ending_before:
        raise StripeError(
            400,
            "You may only specify one of these parameters: ending_before, starting_after.",
            param="ending_before",
        )
    return limit, starting_after, ending_before


def _page_request(
    resource: Resource, params: dict[str, str], multi: dict[str, list[str]]
) -> PageRequest:
    limit, starting_after, ending_before = _paging(params)
    gte: int | None = None
    lte: int | None = None
    if "created" in params:
        gte = lte = _int_param(params, "created")
    for name, shift, lower in (
        ("created[gte]", 0, True),
        ("created[gt]", 1, True),
        ("created[lte]", 0, False),
        ("created[lt]", -1, False),
    ):
        if name in params:
            bound = _int_param(params, name) + shift
            if lower:
                gte = bound if gte is None else max(gte, bound)
            else:
                lte = bound if lte is None else min(lte, bound)

    indexed: list[tuple[str, Getter, Any]] = []
    predicates: list[Callable[[dict[str, Any]], bool]] = []
    for name, getter in resource.filters.items():
        if name not in params:
            continue
        value: Any = params[name]
        if name == "status":
            if value not in resource.statuses and resource.statuses:
                raise StripeError(
                    400,
                    f"Invalid status: must be one of {', '.join(sorted(resource.statuses))}",
                    param="status",
                )
            if value == "all":
                continue
            if resource.collection == "subscriptions" and value == "ended":
                predicates.append(lambda r: r.get("status") in ("canceled", "incomplete_expired"))
                continue
        if name in _BOOLEAN_FILTERS:
            if value not in ("true", "false"):
                raise StripeError(400, f"Invalid boolean: {value}", param=name)
            value = value == "true"
        if name == "type" and "*" in value:
            pattern = value
            predicates.append(lambda r, p=pattern: fnmatch.fnmatchcase(str(r.get("type")), p))
            continue
        indexed.append((name, getter, value))
    if resource.collection == "subscriptions" and "status" not in params:
        # Like Stripe: canceled subscriptions only appear when asked for.
        predicates.append(lambda r: r.get("status") != "canceled")
    if resource.collection == "events":
        # `types[]=a` from hand-written clients, `types[0]=a` from the stripe package.
        types = [v for k, vs in multi.items() if _is_list_key(k, "types") for v in vs]
        if types:
            wanted = tuple(types)
            predicates.append(
                lambda r: any(fnmatch.fnmatchcase(str(r.get("type")), t) for t in wanted)
            )
    return PageRequest(
        limit=limit,
        starting_after=starting_after,
        ending_before=ending_before,
        created_gte=gte,
        created_lte=lte,
        indexed=tuple(indexed),
        predicates=tuple(predicates),
    )


def _is_list_key(key: str, name: str) -> bool:
    """`name`, `name[]` or `name[<n>]`: the ways a list parameter arrives in a query string."""
    if key == name:
        return True
    rest = key[len(name) :] if key.startswith(name) else ""
    inner = rest[1:-1]
    return rest.startswith("[") and rest.endswith("]") and (inner == "" or inner.isdigit())


def _check_list_params(resource: Resource, params: dict[str, str]) -> None:
    allowed = _PAGING | _CREATED | set(resource.filters)
    for name in params:
        if name in allowed or _is_list_key(name, "expand"):
            continue
        if resource.collection == "events" and _is_list_key(name, "types"):
            continue
        raise StripeError(400, f"Received unknown parameter: {name}", param=name)


# ---------------------------------------------------------------- the app


class BillingApp:
    """Request handlers over one state store; idempotency records live as long as the app."""

    def __init__(self, store: StateStore, *, credentials: Credentials) -> None:
        self.store = store
        self.credentials = credentials
        self._views: dict[str, OrderedView] = {}
        self._views_lock = threading.Lock()
        # The key and body fingerprint of the idempotent request being handled (under the lock).
        self._pending_key: tuple[str, str] | None = None

    # -- auth

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = value.strip()
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(value.strip()).decode("utf-8").partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
            )
        expected = self.credentials.billing_key
        valid = key == expected if expected is not None else key.startswith("sk_test_")
        if not valid or len(key) <= len("sk_test_"):
            shown = key[:8] + "*" * 4 + key[-4:] if len(key) > 12 else "****"
            raise StripeError(401, f"Invalid API Key provided: {shown}", code="api_key_invalid")

    # -- reads

    def _view(self, resource: Resource) -> OrderedView:
        collection = self.store.collection(SYSTEM, resource.collection)
        view = self._views.get(resource.collection)
        if view is not None and view.version == collection.version:
            return view
        with self._views_lock, self.store.lock:
            view = self._views.get(resource.collection)
            if view is None or view.version != collection.version:
                view = OrderedView.build(collection, nested=resource.nested)
                self._views[resource.collection] = view
        return view

    async def list(self, request: Request) -> Response:
        resource = self._resource(request)
        multi: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            multi.setdefault(key, []).append(value)
        params = {key: values[-1] for key, values in multi.items()}
        _check_list_params(resource, params)
        page_request = _page_request(resource, params, multi)
        view = self._view(resource)
        try:
            positions, has_more = page(view, page_request)
        except UnknownCursor as error:
            raise StripeError(
                400,
                f"No such {resource.object_name}: '{error.record_id}'",
                code="resource_missing",
                param=error.param,
            ) from None
        url = f"/v1/{request.path_params['resource']}"
        return _json(list_body(view, positions, url=url, has_more=has_more))

    async def retrieve(self, request: Request) -> Response:
        resource = self._resource(request)
        record_id = request.path_params["record_id"]
        record = self.store.collection(SYSTEM, resource.collection).get(record_id)
        if record is None:
            raise _missing(resource.object_name, record_id)
        return _json(encode(embedded(record, resource.nested)))

    async def invoice_lines(self, request: Request) -> Response:
        """`GET /v1/invoices/{id}/lines`: the whole of an invoice's embedded `lines`, paged."""
        invoice_id = request.path_params["record_id"]
        params = _nested_list_params(request, ())
        invoice = self.store.collection(SYSTEM, "invoices").get(invoice_id)
        if invoice is None:
            raise _missing("invoice", invoice_id)
        return _nested_page(invoice, "lines", params, url=f"/v1/invoices/{invoice_id}/lines")

    async def subscription_items(self, request: Request) -> Response:
        """`GET /v1/subscription_items?subscription=<id>`: one subscription's items, paged."""
        params = _nested_list_params(request, ("subscription",))
        subscription_id = params.get("subscription")
        if not subscription_id:
            raise StripeError(400, "Missing required param: subscription.", param="subscription")
        subscription = self.store.collection(SYSTEM, "subscriptions").get(subscription_id)
        if subscription is None:
            raise StripeError(
                404,
                f"No such subscription: '{subscription_id}'",
                code="resource_missing",
                param="subscription",
            )
        return _nested_page(subscription, "items", params, url="/v1/subscription_items")

    def _resource(self, request: Request) -> Resource:
        name = request.path_params["resource"]
        resource = RESOURCES.get(name)
        if resource is None:
            raise StripeError(
                404,
                f"Unrecognized request URL ({request.method}: {request.url.path}).",
            )
        return resource

    # -- writes

    async def create_customer(self, request: Request) -> Response:
        return await self._idempotent(request, self._create_customer)

    async def update_customer(self, request: Request) -> Response:
        return await self._idempotent(request, self._update_customer)

    async def update_subscription(self, request: Request) -> Response:
        return await self._idempotent(request, self._update_subscription)

    async def _idempotent(
        self, request: Request, handler: Callable[[Request, dict[str, Any]], tuple[int, bytes]]
    ) -> Response:
        body = await request.body()
        form = parse_form(body)
        key = request.headers.get("idempotency-key")
        if not key:
            status, payload = handler(request, form)
            return _json(payload, status=status)
        fingerprint = hashlib.sha256(
            request.method.encode() + b" " + request.url.path.encode() + b"\n" + body
        ).hexdigest()
        if len(key) > IDEMPOTENCY_KEY_MAX:
            raise StripeError(
                400,
                f"Invalid idempotency key: must be at most {IDEMPOTENCY_KEY_MAX} characters.",
                type_="idempotency_error",
            )
        # No await between the lookup and the store: one request per key runs the handler.
        # The key's record is written in the same journal entry as the change it made, so it
        # survives a restart with it (Stripe keeps keys at least 24 hours).
        with self.store.lock:
            stored = self.store.journal.extras.get(IDEMPOTENCY_EXTRA, {}).get(key)
            if stored is None:
                self._pending_key = (key, fingerprint)
                try:
                    status, payload = handler(request, form)
                finally:
                    self._pending_key = None
                return _json(payload, status=status, headers={"Idempotency-Key": key})
        first_fingerprint, status, text = stored
        payload = text.encode()
        if first_fingerprint != fingerprint:
            raise StripeError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
                type_="idempotency_error",
            )
        return _json(
            payload,
            status=status,
            headers={"Idempotency-Key": key, "Idempotent-Replayed": "true"},
        )

    def _create_customer(self, request: Request, form: dict[str, Any]) -> tuple[int, bytes]:
        _check_fields(form, CUSTOMER_FIELDS)
        customers = self.store.collection(SYSTEM, "customers")
        record_id = _new_id("cus_")
        while customers.get(record_id) is not None:
            record_id = _new_id("cus_")
        record: dict[str, Any] = {
            "id": record_id,
            "object": "customer",
            "created": int(time.time()),
            "livemode": False,
            "name": None,
            "email": None,
            "description": None,
            "phone": None,
            "currency": None,
            "balance": 0,
            "delinquent": False,
            "address": None,
            "tax_exempt": "none",
            "metadata": {},
        }
        _apply_customer(record, form)
        body = encode(record)
        self._commit(
            [(SYSTEM, "customers", record), self._event("customer.created", record, previous=None)],
            200,
            body,
        )
        return 200, body

    def _update_customer(self, request: Request, form: dict[str, Any]) -> tuple[int, bytes]:
        _check_fields(form, CUSTOMER_FIELDS)
        return self._update(request, form, "customers", "customer", _apply_customer)

    def _update_subscription(self, request: Request, form: dict[str, Any]) -> tuple[int, bytes]:
        _check_fields(form, SUBSCRIPTION_FIELDS)
        return self._update(
            request, form, "subscriptions", "customer.subscription", _apply_subscription
        )

    def _update(
        self,
        request: Request,
        form: dict[str, Any],
        name: str,
        event_prefix: str,
        apply: Callable[[dict[str, Any], dict[str, Any]], None],
    ) -> tuple[int, bytes]:
        collection = self.store.collection(SYSTEM, name)
        record_id = request.path_params["record_id"]
        with self.store.lock:
            current = collection.get(record_id)
            if current is None:
                raise _missing(RESOURCES[name].object_name, record_id)
            updated = json.loads(json.dumps(current))
            apply(updated, form)
            previous = _previous_attributes(current, updated)
            writes = [(SYSTEM, name, updated)]
            if previous:
                writes.append(self._event(f"{event_prefix}.updated", updated, previous=previous))
            body = encode(embedded(updated, RESOURCES[name].nested))
            self._commit(writes, 200, body)
        return 200, body

    def _event(
        self, event_type: str, record: dict[str, Any], *, previous: dict | None
    ) -> tuple[str, str, dict[str, Any]]:
        return event_write(event_type, record, previous=previous)

    def _commit(self, writes: list[tuple[str, str, dict[str, Any]]], status: int, body: bytes):
        """The records, their events and the idempotency record of the request: one entry."""
        extras = None
        if self._pending_key is not None:
            key, fingerprint = self._pending_key
            extras = {IDEMPOTENCY_EXTRA: {key: [fingerprint, status, body.decode()]}}
        self.store.journal.commit(writes, extras=extras)


def event_write(
    event_type: str, record: dict[str, Any], *, previous: dict | None = None
) -> tuple[str, str, dict[str, Any]]:
    """Writes show up in /v1/events, which is how clients load changes incrementally."""
    data: dict[str, Any] = {"object": json.loads(json.dumps(record))}
    if previous is not None:
        data["previous_attributes"] = previous
    event = {
        "id": _new_id("evt_"),
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "api_version": API_VERSION,
        "livemode": False,
        "data": data,
    }
    return (SYSTEM, "events", event)


def _nested_list_params(request: Request, filters: tuple[str, ...]) -> dict[str, str]:
    params = dict(request.query_params)
    for name in params:
        if name not in _PAGING and name not in filters and not _is_list_key(name, "expand"):
            raise StripeError(400, f"Received unknown parameter: {name}", param=name)
    return params


def _nested_page(
    record: dict[str, Any], field: str, params: dict[str, str], *, url: str
) -> Response:
    limit, starting_after, ending_before = _paging(params)
    listed = record.get(field)
    items = list(listed.get("data") or []) if isinstance(listed, dict) else []
    try:
        data, has_more = page_sequence(
            items, limit=limit, starting_after=starting_after, ending_before=ending_before
        )
    except UnknownCursor as error:
        object_name = "line_item" if field == "lines" else "subscription_item"
        raise StripeError(
            400,
            f"No such {object_name}: '{error.record_id}'",
            code="resource_missing",
            param=error.param,
        ) from None
    return _json(encoded_list([encode(item) for item in data], url=url, has_more=has_more))


def _missing(object_name: str, record_id: str) -> StripeError:
    return StripeError(
        404, f"No such {object_name}: '{record_id}'", code="resource_missing", param="id"
    )


def _check_fields(form: dict[str, Any], allowed: frozenset[str]) -> None:
    for name, value in form.items():
        if name == "expand":
            continue
        if name not in allowed:
            raise StripeError(400, f"Received unknown parameter: {name}", param=name)
        if name == "address" and isinstance(value, dict):
            for part in value:
                if part not in ADDRESS_FIELDS:
                    raise StripeError(
                        400, f"Received unknown parameter: address[{part}]", param="address"
                    )
        if name == "metadata" and not isinstance(value, (dict, str)):
            raise StripeError(400, "Invalid hash", param="metadata")


def _merge_metadata(record: dict[str, Any], value: Any) -> None:
    if isinstance(value, str):
        if value:
            raise StripeError(400, "Invalid hash", param="metadata")
        record["metadata"] = {}  # `metadata=` clears every key, as in Stripe
        return
    metadata = dict(record.get("metadata") or {})
    for key, item in value.items():
        if isinstance(item, dict):
            raise StripeError(400, "Invalid metadata value", param=f"metadata[{key}]")
        if len(key) > METADATA_KEY_MAX:
            raise StripeError(
                400,
                f"Metadata keys can have up to {METADATA_KEY_MAX} characters.",
                param=f"metadata[{key}]",
            )
        if len(str(item)) > METADATA_VALUE_MAX:
            raise StripeError(
                400,
                f"Metadata values can have up to {METADATA_VALUE_MAX} characters.",
                param=f"metadata[{key}]",
            )
        if item == "":
            metadata.pop(key, None)
        else:
            metadata[key] = item
    if len(metadata) > METADATA_KEYS_MAX:
        raise StripeError(
            400, f"Metadata can have up to {METADATA_KEYS_MAX} keys.", param="metadata"
        )
    record["metadata"] = metadata


def _apply_customer(record: dict[str, Any], form: dict[str, Any]) -> None:
    for name, value in form.items():
        if name == "expand":
            continue
        if name == "metadata":
            _merge_metadata(record, value)
        elif name == "address":
            if value == "":
                record["address"] = None
                continue
            if not isinstance(value, dict):
                raise StripeError(400, "Invalid hash", param="address")
            address = dict(record.get("address") or dict.fromkeys(sorted(ADDRESS_FIELDS)))
            for part, item in value.items():
                address[part] = item or None
            record["address"] = address
        elif name == "tax_exempt":
            if value not in ("none", "exempt", "reverse"):
                raise StripeError(
                    400, "Invalid tax_exempt: must be one of exempt, none, reverse", param=name
                )
            record[name] = value
        else:
            if isinstance(value, dict):
                raise StripeError(400, f"Invalid string: {name}", param=name)
            record[name] = value or None


def _apply_subscription(record: dict[str, Any], form: dict[str, Any]) -> None:
    for name, value in form.items():
        if name == "expand":
            continue
        if name == "metadata":
            _merge_metadata(record, value)
        elif name == "cancel_at_period_end":
            if value not in ("true", "false"):
                raise StripeError(400, f"Invalid boolean: {value}", param=name)
            record[name] = value == "true"
        else:
            record[name] = value or None


def _previous_attributes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Stripe's `previous_attributes`: the old value of every top-level field that changed."""
    return {key: before.get(key) for key in after if before.get(key) != after.get(key)}


def build_app(store: StateStore, *, credentials: Credentials, faults: FaultSpec) -> Starlette:
    """The billing API over `store`; `faults` are applied by the middleware that wraps it."""
    del faults  # the billing API has no system-specific faults (no expiring tokens)
    billing = BillingApp(store, credentials=credentials)
    # Each list's order is built now, not on its first request: that runs in the event loop
    # and would hold up every other request while a large collection is sorted.
    for resource in RESOURCES.values():
        billing._view(resource)

    def guarded(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                billing._authenticate(request)
                response = await handler(request)
                await store.journal.durable()  # answered only once it is on disk
                return response
            except StripeError as error:
                return error_response(
                    error.status,
                    error.message,
                    type_=error.type,
                    code=error.code,
                    param=error.param,
                )
            except ContractError as error:
                return error_response(400, f"Invalid {error}", param=error.field)

        return endpoint

    async def not_found(request: Request) -> Response:
        return error_response(
            404, f"Unrecognized request URL ({request.method}: {request.url.path})."
        )

    routes = [
        Route("/v1/customers", guarded(billing.create_customer), methods=["POST"]),
        Route("/v1/customers/{record_id}", guarded(billing.update_customer), methods=["POST"]),
        Route(
            "/v1/subscriptions/{record_id}", guarded(billing.update_subscription), methods=["POST"]
        ),
        Route("/v1/invoices/{record_id}/lines", guarded(billing.invoice_lines), methods=["GET"]),
        Route("/v1/subscription_items", guarded(billing.subscription_items), methods=["GET"]),
        Route("/v1/{resource}", guarded(billing.list), methods=["GET"]),
        Route("/v1/{resource}/{record_id}", guarded(billing.retrieve), methods=["GET"]),
        Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(CatchAll, system=SYSTEM, errors=ERRORS)])
