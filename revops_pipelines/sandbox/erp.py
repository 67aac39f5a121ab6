"""The sandbox ERP: the NetSuite REST subset of SOURCES.md ("ERP") over a state store.

SuiteQL for bulk reads, the record service for single records, creates, upserts by
external id and updates. Payments are checked against the invoices they apply to,
as NetSuite does, so a client that over-applies money is told so instead of drifting.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from revops_pipelines.sandbox.contract import ContractError
from revops_pipelines.sandbox.errors import CatchAll, ascii_integer
from revops_pipelines.sandbox.faults import FaultSpec, retry_after_header
from revops_pipelines.sandbox.state import FILES, Credentials, StateStore
from revops_pipelines.sandbox.suiteql import SuiteQLEngine, SuiteQLError

RECORD_PATH = "/services/rest/record/v1"
SUITEQL_PATH = "/services/rest/query/v1/suiteql"
TRANSACTION_TYPES = ("invoice", "customerpayment", "creditmemo")
MAX_LIMIT = 1000
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_TYPE_URLS = {
    400: "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.1",
    401: "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.2",
    404: "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.5",
    429: "https://tools.ietf.org/html/rfc6585#section-4",
    500: "https://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.5.1",
}
_CODES = {"server_error": "UNEXPECTED_ERROR", "service_unavailable": "SERVICE_UNAVAILABLE"}
_STATUS_NAMES = {"open": "Open", "paidInFull": "Paid In Full", "voided": "Voided"}


def _error(status: int, code: str, detail: str, *, path: str | None = None) -> JSONResponse:
    details: dict[str, str] = {"detail": detail, "o:errorCode": code}
    if path is not None:
        details["o:errorPath"] = path
    return JSONResponse(
        {
            "type": _TYPE_URLS.get(status, _TYPE_URLS[400]),
            "title": _TITLES.get(status, "Error"),
            "status": status,
            "o:errorDetails": [details],
        },
        status_code=status,
    )


class ErpErrors:
    """NetSuite's REST error shape: `{"type", "title", "status", "o:errorDetails"}`."""

    def error(self, status: int, code: str, message: str) -> Response:
        return _error(status, _CODES.get(code, code), message)

    def rate_limited(self, retry_after: float) -> Response:
        response = _error(
            429,
            "CONCURRENCY_LIMIT_EXCEEDED",
            "Concurrent request limit exceeded. Request blocked.",
        )
        response.headers["Retry-After"] = retry_after_header(retry_after)
        return response


ERRORS = ErpErrors()


class ErpFailure(Exception):
    """A refused ERP request; names the record type, the id and what to fix."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        super().__init__(f"{status} {code}: {detail}")


def _now_text(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(value)
    return float(value)


def _id_order(record_id: str) -> tuple[int, int | str]:
    number = ascii_integer(record_id)
    return (0, number) if number is not None else (1, record_id)


@dataclass
class _ErpState:
    store: StateStore
    credentials: Credentials
    now: Callable[[], datetime]
    engine: SuiteQLEngine
    # externalId → record ids per record type, built on first use and kept up to date by
    # `_write` (the only writer), so an upsert finds its record without scanning the file.
    external_ids: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    highest_ids: dict[str, int] = field(default_factory=dict)

    def collection(self, record_type: str):
        return self.store.collection("erp", record_type)

    def external_index(self, record_type: str) -> dict[str, set[str]]:
        index = self.external_ids.get(record_type)
        if index is None:
            index = {}
            for record in self.collection(record_type).records:
                if record.get("externalId") is not None:
                    index.setdefault(str(record["externalId"]), set()).add(str(record.get("id")))
            self.external_ids[record_type] = index
        return index

    def note_external(self, record_type: str, old: Mapping | None, new: Mapping) -> None:
        index = self.external_index(record_type)
        record_id = str(new.get("id"))
        if old is not None and old.get("externalId") is not None:
            index.get(str(old["externalId"]), set()).discard(record_id)
        if new.get("externalId") is not None:
            index.setdefault(str(new["externalId"]), set()).add(record_id)


def _record_type(name: str) -> str:
    if name not in FILES["erp"]:
        raise ErpFailure(
            404,
            "INVALID_RCRD_TYPE",
            f"Record type '{name}' does not exist; use one of {', '.join(FILES['erp'])}.",
        )
    return name


def _paging(request: Request) -> tuple[int, int]:
    raw_limit = request.query_params.get("limit", str(MAX_LIMIT))
    raw_offset = request.query_params.get("offset", "0")
    limit = ascii_integer(raw_limit)
    offset = ascii_integer(raw_offset)
    if limit is None or not 1 <= limit <= MAX_LIMIT:
        raise ErpFailure(
            400,
            "INVALID_PARAMETER",
            f"limit must be an integer from 1 to {MAX_LIMIT}, not {raw_limit!r}.",
        )
    if offset is None or offset % limit:
        raise ErpFailure(
            400,
            "INVALID_PARAMETER",
            f"offset must be a non-negative multiple of limit ({raw_limit}), not {raw_offset!r}.",
        )
    return limit, offset


def _page(
    request: Request, items: list[Any], *, limit: int, offset: int, total: int | None = None
) -> dict[str, Any]:
    """A NetSuite page; `items` is the whole result, or only the page when `total` is given."""
    page = items[offset : offset + limit] if total is None else items
    total = len(items) if total is None else total
    has_more = offset + len(page) < total
    base = str(request.url.replace(query="")).rstrip("/")
    links = [{"rel": "self", "href": f"{base}?limit={limit}&offset={offset}"}]
    if has_more:
        links.append({"rel": "next", "href": f"{base}?limit={limit}&offset={offset + limit}"})
    return {
        "links": links,
        "count": len(page),
        "hasMore": has_more,
        "items": page,
        "offset": offset,
        "totalResults": total,
    }


def _self_link(base: str, record_type: str, record_id: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": f"{base}{RECORD_PATH}/{record_type}/{record_id}"}]


def _new_id(state: _ErpState, record_type: str) -> str:
    """Transactions share one id space, as SuiteQL's single transaction table requires."""
    space = "transaction" if record_type in TRANSACTION_TYPES else record_type
    highest = state.highest_ids.get(space)
    if highest is None:
        types = TRANSACTION_TYPES if space == "transaction" else (record_type,)
        highest = max(
            (ascii_integer(key) or 0 for name in types for key in state.collection(name).index),
            default=0,
        )
    state.highest_ids[space] = highest + 1
    return str(highest + 1)


def _find_external(state: _ErpState, record_type: str, external_id: str) -> list[dict[str, Any]]:
    collection = state.collection(record_type)
    ids = sorted(state.external_index(record_type).get(external_id, ()), key=_id_order)
    return [record for record in map(collection.get, ids) if record is not None]


def _by_external(state: _ErpState, record_type: str, external_id: str) -> str | None:
    """The internal id of the one record with this external id; refuses an ambiguous one."""
    matches = _find_external(state, record_type, external_id)
    if len(matches) > 1:
        raise ErpFailure(
            400,
            "USER_ERROR",
            f"{len(matches)} {record_type} records have externalId {external_id}: "
            f"{', '.join(str(m.get('id')) for m in matches)}; address one by id.",
        )
    return str(matches[0]["id"]) if matches else None


def _applications(payment: Mapping[str, Any], *, payment_id: str) -> dict[str, float]:
    """Amount applied per invoice id; a malformed line is refused by field name."""
    sublist = payment.get("apply") or {}
    items = sublist.get("items") if isinstance(sublist, Mapping) else sublist
    if not isinstance(items, list):
        raise ErpFailure(
            400, "USER_ERROR", f"customerpayment {payment_id}: apply.items must be a list."
        )
    applied: dict[str, float] = {}
    for position, line in enumerate(items):
        if not isinstance(line, Mapping) or line.get("apply", True) is False:
            continue
        doc = line.get("doc")
        doc_id = doc.get("id") if isinstance(doc, Mapping) else doc
        try:
            amount = _money(line.get("amount"))
        except TypeError:
            raise ErpFailure(
                400,
                "USER_ERROR",
                f"customerpayment {payment_id}: apply.items[{position}].amount must be a number.",
            ) from None
        if doc_id in (None, "") or amount <= 0:
            raise ErpFailure(
                400,
                "USER_ERROR",
                f"customerpayment {payment_id}: apply.items[{position}] needs doc.id and an "
                "amount above zero.",
            )
        applied[str(doc_id)] = applied.get(str(doc_id), 0.0) + amount
    return applied


def _set_remaining(invoice: dict[str, Any], remaining: float) -> None:
    invoice["amountRemaining"] = remaining
    status = (
        (invoice.get("status") or {}).get("id")
        if isinstance(invoice.get("status"), Mapping)
        else None
    )
    if status == "voided":
        return
    new_status = "paidInFull" if remaining <= 0 else "open"
    invoice["status"] = {"id": new_status, "refName": _STATUS_NAMES[new_status]}


def _apply_payment(
    state: _ErpState,
    old: Mapping[str, Any] | None,
    new: dict[str, Any],
    *,
    payment_id: str,
    stamp: str,
) -> list[dict[str, Any]]:
    """The invoices as they are after replacing `old` by `new`; raises before changing anything."""
    invoices = state.collection("invoice")
    before = _applications(old, payment_id=payment_id) if old else {}
    after = _applications(new, payment_id=payment_id)
    changed: list[dict[str, Any]] = []
    for invoice_id in sorted(set(before) | set(after)):
        invoice = invoices.get(invoice_id)
        if invoice is None:
            if invoice_id in after:
                raise ErpFailure(
                    400,
                    "USER_ERROR",
                    f"customerpayment {payment_id}: apply.items doc {invoice_id} is no invoice.",
                )
            continue
        status = invoice.get("status")
        if invoice_id in after and isinstance(status, Mapping) and status.get("id") == "voided":
            raise ErpFailure(
                400, "USER_ERROR", f"customerpayment {payment_id}: invoice {invoice_id} is voided."
            )
        try:
            remaining = _money(invoice.get("amountRemaining", invoice.get("total")))
        except TypeError:
            remaining = 0.0
        available = round(remaining + before.get(invoice_id, 0.0), 6)
        wanted = round(after.get(invoice_id, 0.0), 6)
        if wanted > available:
            raise ErpFailure(
                400,
                "USER_ERROR",
                f"customerpayment {payment_id}: apply.items amount {wanted} for invoice "
                f"{invoice_id} exceeds its amount remaining {available}. Lower the applied amount.",
            )
        updated = {**invoice, "lastModifiedDate": stamp}
        _set_remaining(updated, round(available - wanted, 6))
        changed.append(updated)
    applied = round(sum(after.values()), 6)
    new["applied"] = applied
    payment = new.get("payment")
    if isinstance(payment, int | float) and not isinstance(payment, bool):
        new["unapplied"] = round(payment - applied, 6)
    else:
        new["payment"] = applied
        new["unapplied"] = 0.0
    return changed


def _prepare_invoice(record: dict[str, Any], *, created: bool) -> None:
    """New invoices start open with their whole total remaining, as NetSuite computes it.

    A voided invoice has nothing remaining; a new zero-total invoice is paid in full at once.
    """
    status = record.get("status")
    if isinstance(status, Mapping) and status.get("id") == "voided":
        record["status"] = {"id": "voided", "refName": _STATUS_NAMES["voided"]}
        if created:
            record.setdefault("amountRemaining", 0.0)
        else:
            record["amountRemaining"] = 0.0
        if not created:
            return
    if not created:
        return
    lines = (
        (record.get("item") or {}).get("items") if isinstance(record.get("item"), Mapping) else []
    )
    if record.get("subtotal") is None:
        record["subtotal"] = round(
            sum(
                float(line.get("amount") or 0) for line in lines or () if isinstance(line, Mapping)
            ),
            6,
        )
    if record.get("total") is None:
        record["total"] = round(float(record["subtotal"]) + float(record.get("taxTotal") or 0), 6)
    status = record.get("status")
    if isinstance(status, Mapping) and status.get("id") == "voided":
        record.setdefault("amountRemaining", 0.0)
        return
    record["amountRemaining"] = float(record["total"])
    state = "paidInFull" if record["amountRemaining"] <= 0 else "open"
    record["status"] = {"id": state, "refName": _STATUS_NAMES[state]}


# Body fields NetSuite types as text: an object or a list there is refused, never stored.
_TEXT_FIELDS = frozenset(
    {"externalId", "companyName", "email", "entityId", "tranId", "tranDate", "memo",
     "custentity_crm_account_id", "custentity_tax_jurisdiction",
     "custbody_billing_subscription_id"}
)  # fmt: skip
MAX_TEXT = 4000


def _check_body(record_type: str, body: Mapping[str, Any]) -> None:
    for name in _TEXT_FIELDS & body.keys():
        value = body[name]
        if value is not None and not isinstance(value, str | int | float):
            raise ErpFailure(
                400, "INVALID_FLD_VALUE", f"{record_type}.{name} must be text, not an object."
            )
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise ErpFailure(
                400, "INVALID_FLD_VALUE", f"{record_type}.{name} is longer than {MAX_TEXT}."
            )


def _write(
    state: _ErpState,
    record_type: str,
    *,
    record_id: str | None,
    body: dict[str, Any],
    merge: bool,
    external_key: str | None = None,
    upsert: bool = False,
) -> str:
    """Create, change or upsert one record; one journal entry holds it and what it touched.

    `external_key` makes it an upsert: the record with that external id is found under the
    same lock that writes it, so concurrent upserts of one id leave one record, all answered.
    """
    _check_body(record_type, body)
    collection = state.collection(record_type)
    with state.store.lock:
        if external_key is not None:
            record_id = _by_external(state, record_type, external_key)
            if record_id is None and not upsert:
                raise ErpFailure(
                    404, "NONEXISTENT_ID", f"{record_type} eid:{external_key} does not exist."
                )
        old = collection.get(record_id) if record_id is not None else None
        if record_id is not None and old is None:
            raise ErpFailure(404, "NONEXISTENT_ID", f"{record_type} {record_id} does not exist.")
        external_id = body.get("externalId")
        if external_id is not None:
            clash = [
                r
                for r in _find_external(state, record_type, str(external_id))
                if str(r.get("id")) != record_id
            ]
            if clash:
                raise ErpFailure(
                    400,
                    "DUP_RCRD",
                    f"{record_type} {clash[0].get('id')} already has externalId {external_id}.",
                )
        created = old is None
        new_id = record_id or _new_id(state, record_type)
        fields = {k: v for k, v in body.items() if k not in ("id", "links")}
        record = {**old, **fields} if (old is not None and merge) else dict(fields)
        stamp = _now_text(state.now())
        # Stored links are relative, as in hand-written state files; GET adds the host.
        record = {"links": _self_link("", record_type, new_id), "id": new_id, **record}
        if created:
            record.setdefault("dateCreated", stamp)
        elif old is not None and "dateCreated" in old:
            record["dateCreated"] = old["dateCreated"]
        record["lastModifiedDate"] = stamp
        # Checked before anything is computed from the fields.
        collection.check(record)
        touched: list[dict[str, Any]] = []
        if record_type == "customerpayment":
            touched = _apply_payment(state, old, record, payment_id=new_id, stamp=stamp)
        elif record_type == "invoice":
            _prepare_invoice(record, created=created)
        state.store.journal.commit(
            [("erp", record_type, record), *(("erp", "invoice", invoice) for invoice in touched)]
        )
        state.note_external(record_type, old, record)
        return new_id


def _write_durably(state: _ErpState, record_type: str, **write: Any) -> str:
    """`_write`, then fsync, in one worker thread: a write costs one hop off the event loop."""
    new_id = _write(state, record_type, **write)
    state.store.journal.sync()
    return new_id


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        raise ErpFailure(400, "INVALID_CONTENT", "The request body must be a JSON object.")
    return body


def build_app(
    store: StateStore,
    *,
    credentials: Credentials,
    faults: FaultSpec,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    query_time_limit_s: float = 30.0,
    query_row_limit: int = 1_000_000,
) -> Starlette:
    """The ERP as an ASGI app over `store`; wrap it in FaultMiddleware to serve it.

    `faults` is applied by the middleware; it is taken here so all three systems build alike.
    The account's concurrency limit is the middleware's too (`max_in_flight`), so one
    setting says how many requests the ERP serves at once.
    A SuiteQL query is stopped after `query_time_limit_s` or beyond `query_row_limit` rows.
    """
    del faults

    def snapshot() -> dict[str, list[dict[str, Any]]]:
        with store.lock:
            return {name: list(store.collection("erp", name).records) for name in FILES["erp"]}

    def changes(since: int | None) -> tuple[int, list[tuple[str, Any]] | None]:
        with store.lock:
            journal = store.journal
            if since is None:
                return journal.change_count, None
            return journal.change_count, journal.changes_since(since, "erp")

    state = _ErpState(
        store=store,
        credentials=credentials,
        now=now,
        engine=SuiteQLEngine(
            records=snapshot,
            version=lambda: store.version("erp"),
            time_limit_s=query_time_limit_s,
            row_limit=query_row_limit,
            changes=changes,
        ),
    )

    def authorized(request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        return credentials.erp_token is None or token == credentials.erp_token

    def rest(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            if not authorized(request):
                return _error(
                    401,
                    "INVALID_LOGIN",
                    "Invalid login attempt. For more details, see the Login Audit Trail.",
                )
            try:
                # A write is answered only once it is on disk: `_write_durably` syncs it.
                return await handler(request)
            except ErpFailure as failure:
                return _error(failure.status, failure.code, failure.detail)
            except ContractError as error:
                return _error(
                    400,
                    "INVALID_CONTENT",
                    f"Error while accessing resource: invalid field value {error}.",
                    path=error.field,
                )

        return endpoint

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def suiteql(request: Request) -> Response:
        if "transient" not in request.headers.get("prefer", "").lower():
            raise ErpFailure(
                400, "INVALID_PARAMETER", "SuiteQL requests need the header 'Prefer: transient'."
            )
        limit, offset = _paging(request)
        body = await _json_object(request)
        query = body.get("q")
        if not isinstance(query, str):
            raise ErpFailure(400, "INVALID_PARAMETER", "The body must hold the query as 'q'.")
        try:
            _, rows, total = await run_in_threadpool(
                state.engine.page, query, offset=offset, limit=limit
            )
        except SuiteQLError as error:
            raise ErpFailure(400, error.error_code, error.detail) from None
        items = [{"links": [], **row} for row in rows]
        return JSONResponse(_page(request, items, limit=limit, offset=offset, total=total))

    async def record_list(request: Request) -> Response:
        record_type = _record_type(request.path_params["type"])
        if request.method == "POST":
            body = await _json_object(request)
            base = base_url(request)
            new_id = await run_in_threadpool(
                _write_durably, state, record_type, record_id=None, body=body, merge=False
            )
            return _no_content(base, record_type, new_id)
        limit, offset = _paging(request)
        with store.lock:
            ids = sorted(store.collection("erp", record_type).index, key=_id_order)
        base = base_url(request)
        items = [{"links": _self_link(base, record_type, i), "id": i} for i in ids]
        return JSONResponse(_page(request, items, limit=limit, offset=offset))

    async def record(request: Request) -> Response:
        record_type = _record_type(request.path_params["type"])
        key = request.path_params["id"]
        base = base_url(request)
        external_key = key.removeprefix("eid:") if key.startswith("eid:") else None
        record_id = None if external_key is not None else key
        if request.method == "GET" and external_key is not None:
            with store.lock:
                record_id = _by_external(state, record_type, external_key)
        if request.method == "GET":
            found = store.collection("erp", record_type).get(record_id) if record_id else None
            if found is None:
                raise ErpFailure(404, "NONEXISTENT_ID", f"{record_type} {key} does not exist.")
            fields = {k: v for k, v in found.items() if k != "links"}
            return JSONResponse(
                {"links": _self_link(base, record_type, str(found["id"])), **fields}
            )
        body = await _json_object(request)
        if request.method == "PUT":
            if external_key is None:
                raise ErpFailure(
                    405,
                    "INVALID_PARAMETER",
                    "PUT upserts by external id: use .../eid:<externalId>.",
                )
            body = {**body, "externalId": external_key}
        new_id = await run_in_threadpool(
            _write_durably,
            state,
            record_type,
            record_id=record_id,
            body=body,
            merge=True,
            external_key=external_key,
            upsert=request.method == "PUT",
        )
        return _no_content(base, record_type, new_id)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 405:
            return _error(405, "INVALID_PARAMETER", f"{request.method} is not allowed here.")
        return _error(404, "NONEXISTENT_ID", "The requested resource does not exist.")

    routes = [
        Route(SUITEQL_PATH, rest(suiteql), methods=["POST"]),
        Route(f"{RECORD_PATH}/{{type}}", rest(record_list), methods=["GET", "POST"]),
        Route(f"{RECORD_PATH}/{{type}}/{{id}}", rest(record), methods=["GET", "PATCH", "PUT"]),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: not_found},
        middleware=[Middleware(CatchAll, system="erp", errors=ERRORS)],
    )


def _no_content(base: str, record_type: str, record_id: str) -> Response:
    return Response(
        status_code=204, headers={"Location": f"{base}{RECORD_PATH}/{record_type}/{record_id}"}
    )
