"""The sandbox CRM: the Salesforce REST subset of SOURCES.md ("CRM") over a state store.

OAuth client-credentials tokens, SOQL `query`/`queryAll` with server-side cursors,
sObject reads, updates and upserts by external id. Error bodies, status codes and
headers are Salesforce's, so a client written against the real API works here unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

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
from revops_pipelines.sandbox.soql import (
    SoqlError,
    build_catalog,
    parse_soql,
    resolve_object,
    run_soql,
)
from revops_pipelines.sandbox.state import FILES, Credentials, StateStore

API_VERSION = "59.0"
API = f"/services/data/v{API_VERSION}"
ID_PREFIXES = {
    "Account": "001",
    "Opportunity": "006",
    "OpportunityLineItem": "00k",
    "Product2": "01t",
    "Contract": "800",
}
DEFAULT_BATCH = 2000
MIN_BATCH = 200
COLLECTION_LIMIT = 200  # records per sObject Collections call
# Fields the platform maintains; a client may not write them.
READ_ONLY = frozenset(
    {"id", "isdeleted", "createddate", "lastmodifieddate", "systemmodstamp", "attributes"}
)
_CODES = {"server_error": "UNKNOWN_EXCEPTION", "service_unavailable": "SERVER_UNAVAILABLE"}
_CHECKSUM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


class CrmErrors:
    """Salesforce's REST error shape: a JSON list of `{"message", "errorCode", "fields"}`."""

    def error(self, status: int, code: str, message: str) -> Response:
        return _error(status, _CODES.get(code, code), message)

    def rate_limited(self, retry_after: float) -> Response:
        response = _error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        response.headers["Retry-After"] = retry_after_header(retry_after)
        return response


ERRORS = CrmErrors()


def _error(
    status: int, code: str, message: str, *, fields: list[str] | None = None
) -> JSONResponse:
    return JSONResponse(
        [{"message": message, "errorCode": code, "fields": fields or []}], status_code=status
    )


class _CrmFailure(Exception):
    """Raised inside handlers; becomes a Salesforce error response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{status} {code}: {message}")


def salesforce_id(prefix: str, number: int) -> str:
    """An 18-character id: 15 case-sensitive characters plus Salesforce's checksum suffix."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    digits = ""
    while number:
        number, rest = divmod(number, len(alphabet))
        digits = alphabet[rest] + digits
    base = f"{prefix}Sb{digits.rjust(10, '0')}"
    if len(base) != 15:
        raise ValueError(f"record number too large for a Salesforce id: {number}")
    return id18(base)


def id18(id15: str) -> str:
    """Adds the suffix that says which characters are upper case, five characters per letter."""
    suffix = ""
    for start in range(0, 15, 5):
        bits = sum(1 << i for i, char in enumerate(id15[start : start + 5]) if char.isupper())
        suffix += _CHECKSUM_CHARS[bits]
    return id15 + suffix


def sf_datetime(moment: datetime) -> str:
    """Salesforce's datetime text: `2025-03-01T10:15:00.000+0000`."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _attributes(object_name: str, record_id: str) -> dict[str, str]:
    return {"type": object_name, "url": f"{API}/sobjects/{object_name}/{record_id}"}


@dataclass
class _Cursor:
    object_name: str
    rows: list[dict[str, Any]]
    batch_size: int


@dataclass
class _CrmState:
    """Everything one running CRM app remembers between requests."""

    store: StateStore
    credentials: Credentials
    faults: FaultSpec
    clock: Callable[[], float]
    now: Callable[[], datetime]
    api_limit: int
    max_cursors: int
    tokens: dict[str, float] = field(default_factory=dict)
    cursors: OrderedDict[str, _Cursor] = field(default_factory=OrderedDict)
    api_calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    locator_numbers: itertools.count = field(default_factory=lambda: itertools.count(1))

    def limit_header(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.api_calls}/{self.api_limit}"}


def _object_name(name: str) -> str:
    try:
        return resolve_object(name, FILES["crm"])
    except SoqlError:
        raise _CrmFailure(
            404, "NOT_FOUND", f"The requested resource does not exist: sObject type '{name}'"
        ) from None


def _batch_size(request: Request) -> int | None:
    options = request.headers.get("sforce-query-options", "")
    for part in options.split(","):
        key, _, value = part.partition("=")
        size = ascii_integer(value.strip())
        if key.strip().lower() == "batchsize" and size is not None:
            return min(DEFAULT_BATCH, max(MIN_BATCH, size))
    return None


def _authorize(state: _CrmState, request: Request) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    issued = state.tokens.get(token.strip()) if scheme.lower() in ("bearer", "oauth") else None
    ttl = state.faults.token_ttl_s
    if issued is None or (ttl is not None and state.clock() - issued >= ttl):
        raise _CrmFailure(401, "INVALID_SESSION_ID", "Session expired or invalid")
    with state.lock:
        state.api_calls += 1
        over = state.api_calls > state.api_limit
    if over:
        raise _CrmFailure(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")


def _query_page(state: _CrmState, locator: str, offset: int, batch: int | None) -> dict[str, Any]:
    with state.lock:
        cursor = state.cursors.get(locator)
        if cursor is not None:
            state.cursors.move_to_end(locator)
    if cursor is None or offset < 0 or offset > len(cursor.rows):
        raise _CrmFailure(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    size = batch or cursor.batch_size
    rows = cursor.rows[offset : offset + size]
    answer: dict[str, Any] = {"totalSize": len(cursor.rows), "done": True, "records": rows}
    end = offset + len(rows)
    if end < len(cursor.rows):
        answer["done"] = False
        answer["nextRecordsUrl"] = f"{API}/query/{locator}-{end}"
    else:
        with state.lock:
            state.cursors.pop(locator, None)
    # Key order as Salesforce sends it.
    return {
        key: answer[key]
        for key in ("totalSize", "done", "nextRecordsUrl", "records")
        if key in answer
    }


def _run_query(state: _CrmState, text: str, *, include_deleted: bool, batch: int | None) -> dict:
    try:
        query = parse_soql(text)
        object_name = resolve_object(query.object_name, FILES["crm"])
        with state.store.lock:
            records = list(state.store.collection("crm", object_name).records)
        rows = run_soql(
            query,
            records,
            catalog=build_catalog(object_name, records),
            include_deleted=include_deleted,
        )
    except SoqlError as error:
        raise _CrmFailure(400, error.error_code, error.message) from None
    for row in rows:
        row_id = row.get("Id")
        attributes = _attributes(object_name, str(row_id)) if row_id else {"type": object_name}
        row_items = list(row.items())
        row.clear()
        row["attributes"] = attributes
        row.update(row_items)
    with state.lock:
        locator = f"01g{next(state.locator_numbers):012d}AAA"
        state.cursors[locator] = _Cursor(object_name, rows, batch or DEFAULT_BATCH)
        while len(state.cursors) > state.max_cursors:
            state.cursors.popitem(last=False)
    return _query_page(state, locator, 0, batch)


def _resolve_fields(object_name: str, body: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The body's fields in API casing; refuses unknown and read-only fields by name."""
    if not isinstance(body, dict):
        raise _CrmFailure(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    catalog = build_catalog(object_name, records)
    resolved: dict[str, Any] = {}
    for key, value in body.items():
        if key.lower() in READ_ONLY:
            raise _CrmFailure(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {key}. Please check the security settings "
                "of this field and verify that it is read/write for your profile.",
            )
        try:
            resolved[catalog.resolve(key)] = value
        except SoqlError:
            raise _CrmFailure(
                400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {object_name}"
            ) from None
    return resolved


def _stamped(state: _CrmState, record: dict[str, Any]) -> dict[str, Any]:
    stamp = sf_datetime(state.now())
    return {**record, "LastModifiedDate": stamp, "SystemModstamp": stamp}


def _save(state: _CrmState, object_name: str, record: dict[str, Any]) -> None:
    state.store.journal.commit([("crm", object_name, _stamped(state, record))])


def _update_collection(
    state: _CrmState, records: list[Any]
) -> tuple[list[dict[str, Any]], list[tuple[str, dict[str, Any]]]]:
    """Per-record results and the updated records; nothing is saved here."""
    results: list[dict[str, Any]] = []
    changed: list[tuple[str, dict[str, Any]]] = []
    for item in records:
        record_id = None
        try:
            if not isinstance(item, dict):
                raise _CrmFailure(400, "JSON_PARSER_ERROR", "each record must be a JSON object")
            attributes = item.get("attributes")
            object_type = attributes.get("type") if isinstance(attributes, dict) else None
            if not object_type:
                raise _CrmFailure(400, "INVALID_TYPE", "Must send a concrete entity type.")
            object_name = _object_name(str(object_type))
            record_id = item.get("id") or item.get("Id")
            if not record_id:
                raise _CrmFailure(400, "MISSING_ARGUMENT", "Id not specified in an update call")
            collection = state.store.collection("crm", object_name)
            current = collection.get(str(record_id))
            if current is None or current.get("IsDeleted") is True:
                raise _CrmFailure(404, "ENTITY_IS_DELETED", "entity is deleted or does not exist")
            fields = {k: v for k, v in item.items() if k not in ("attributes", "id", "Id")}
            for name, value in fields.items():
                if isinstance(value, dict | list):
                    raise _CrmFailure(
                        400, "INVALID_FIELD", f"{name}: a field value must be a scalar"
                    )
            changes = _resolve_fields(object_name, fields, collection.records)
            updated = {**current, **changes}
            try:
                collection.check(updated)
            except ContractError as error:
                raise _CrmFailure(
                    400,
                    "INVALID_TYPE_ON_FIELD_IN_RECORD",
                    f"{error.field}: value not of required type: {error.reason}",
                ) from None
            changed.append((object_name, updated))
            results.append({"id": str(record_id), "success": True, "errors": []})
        except _CrmFailure as failure:
            results.append(
                {
                    "id": record_id,
                    "success": False,
                    "errors": [
                        {"statusCode": failure.code, "message": failure.message, "fields": []}
                    ],
                }
            )
    return results, changed


def _new_id(state: _CrmState, object_name: str) -> str:
    collection = state.store.collection("crm", object_name)
    number = len(collection.records) + 1
    while collection.get(salesforce_id(ID_PREFIXES[object_name], number)) is not None:
        number += 1
    return salesforce_id(ID_PREFIXES[object_name], number)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise _CrmFailure(400, "JSON_PARSER_ERROR", "The request body is not valid JSON") from None


def build_app(
    store: StateStore,
    *,
    credentials: Credentials,
    faults: FaultSpec,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    api_limit: int = 1_000_000,
    max_cursors: int = 256,
) -> Starlette:
    """The CRM as an ASGI app over `store`; wrap it in FaultMiddleware to serve it."""
    state = _CrmState(
        store=store,
        credentials=credentials,
        faults=faults,
        clock=clock,
        now=now,
        api_limit=api_limit,
        max_cursors=max_cursors,
    )

    def rest(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                _authorize(state, request)
                response = await handler(request)
                await store.journal.durable()  # answered only once it is on disk
            except _CrmFailure as failure:
                response = _error(failure.status, failure.code, failure.message)
            except ContractError as error:
                response = _error(
                    400,
                    "JSON_PARSER_ERROR",
                    f"Cannot deserialize {error.field}: {error.reason}",
                    fields=[error.field],
                )
            response.headers.update(state.limit_header())
            return response

        return endpoint

    async def token(request: Request) -> Response:
        # Form parsing in Starlette needs python-multipart; a url-encoded body needs only this.
        form = {**request.query_params}
        form.update(parse_qsl((await request.body()).decode("utf-8", "replace")))
        grant = form.get("grant_type")
        if grant != "client_credentials":
            return JSONResponse(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
                status_code=400,
            )
        client_id = str(form.get("client_id") or "")
        secret = str(form.get("client_secret") or "")
        if not client_id or not secret:
            return JSONResponse(
                {"error": "invalid_client_id", "error_description": "client identifier invalid"},
                status_code=400,
            )
        expected = (credentials.crm_client_id, credentials.crm_client_secret)
        if (expected[0] is not None and client_id != expected[0]) or (
            expected[1] is not None and secret != expected[1]
        ):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "invalid client credentials"},
                status_code=401,
            )
        access_token = f"00DSb0000000001!{secrets.token_urlsafe(32)}"
        with state.lock:
            state.tokens[access_token] = state.clock()
        instance_url = str(request.base_url).rstrip("/")
        identity = f"{instance_url}/id/00DSb0000000001EAA/005Sb0000000001AAA"
        issued_at = str(int(time.time() * 1000))
        signature = base64.b64encode(
            hmac.new(secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
        ).decode()
        return JSONResponse(
            {
                "access_token": access_token,
                "signature": signature,
                "scope": "api",
                "instance_url": instance_url,
                "id": identity,
                "token_type": "Bearer",
                "issued_at": issued_at,
            }
        )

    async def query(request: Request) -> Response:
        text = request.query_params.get("q")
        if not text:
            raise _CrmFailure(400, "MALFORMED_QUERY", "The query parameter 'q' is required")
        include_deleted = request.url.path.rstrip("/").endswith("queryAll")
        answer = await run_in_threadpool(
            _run_query, state, text, include_deleted=include_deleted, batch=_batch_size(request)
        )
        return JSONResponse(answer)

    async def query_more(request: Request) -> Response:
        locator, _, offset_text = request.path_params["cursor"].rpartition("-")
        offset = ascii_integer(offset_text)
        if not locator or offset is None:
            raise _CrmFailure(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        answer = _query_page(state, locator, offset, _batch_size(request))
        return JSONResponse(answer)

    async def sobject(request: Request) -> Response:
        object_name = _object_name(request.path_params["object"])
        record_id = request.path_params["record_id"]
        collection = store.collection("crm", object_name)
        if request.method == "GET":
            record = collection.get(record_id)
            if record is None or record.get("IsDeleted") is True:
                raise _CrmFailure(404, "NOT_FOUND", "The requested resource does not exist")
            fields = {k: v for k, v in record.items() if k != "attributes"}
            return JSONResponse({"attributes": _attributes(object_name, record_id), **fields})
        body = await _json_body(request)
        with store.lock:
            record = collection.get(record_id)
            if record is None or record.get("IsDeleted") is True:
                raise _CrmFailure(404, "NOT_FOUND", "The requested resource does not exist")
            changes = _resolve_fields(object_name, body, collection.records)
            _save(state, object_name, {**record, **changes})
        return Response(status_code=204)

    async def upsert(request: Request) -> Response:
        object_name = _object_name(request.path_params["object"])
        value = request.path_params["value"]
        body = await _json_body(request)
        collection = store.collection("crm", object_name)
        with store.lock:
            catalog = build_catalog(object_name, collection.records)
            try:
                field_name = catalog.resolve(request.path_params["field"])
            except SoqlError:
                raise _CrmFailure(
                    404,
                    "NOT_FOUND",
                    "Provided external ID field does not exist or is not accessible: "
                    f"{request.path_params['field']}",
                ) from None
            changes = _resolve_fields(object_name, body, collection.records)
            if field_name in changes and str(changes.pop(field_name)) != value:
                raise _CrmFailure(
                    400,
                    "INVALID_FIELD",
                    f"The external id field {field_name} in the body differs from the URL",
                )
            matches = [
                record
                for record in collection.records
                if record.get("IsDeleted") is not True
                and record.get(field_name) is not None
                and str(record.get(field_name)) == value
            ]
            if len(matches) > 1:
                return JSONResponse(
                    [f"{API}/sobjects/{object_name}/{record['Id']}" for record in matches],
                    status_code=300,
                )
            if matches:
                record_id = str(matches[0]["Id"])
                _save(state, object_name, {**matches[0], **changes})
                status, created = 200, False
            else:
                if field_name == "Id":
                    raise _CrmFailure(404, "NOT_FOUND", "The requested resource does not exist")
                record_id = _new_id(state, object_name)
                stamp = sf_datetime(state.now())
                record = {
                    "attributes": _attributes(object_name, record_id),
                    "Id": record_id,
                    field_name: value,
                    **changes,
                    "IsDeleted": False,
                    "CreatedDate": stamp,
                }
                _save(state, object_name, record)
                status, created = 201, True
        return JSONResponse(
            {"id": record_id, "success": True, "errors": [], "created": created},
            status_code=status,
        )

    async def collections(request: Request) -> Response:
        """sObject Collections update: up to 200 records, one result per record, in order."""
        body = await _json_body(request)
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records:
            raise _CrmFailure(400, "INVALID_FIELD", "records must be a non-empty list")
        if len(records) > COLLECTION_LIMIT:
            raise _CrmFailure(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records "
                "into this call",
            )
        all_or_none = body.get("allOrNone") is True
        with store.lock:
            results, changed = _update_collection(state, records)
            failed = any(not result["success"] for result in results)
            if all_or_none and failed:
                results = [
                    result
                    if not result["success"]
                    else {
                        "id": result["id"],
                        "success": False,
                        "errors": [
                            {
                                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                "message": "Record rolled back because not all records were "
                                "valid and the request was using AllOrNone header",
                                "fields": [],
                            }
                        ],
                    }
                    for result in results
                ]
            elif changed:
                # One call, one journal entry: the records it changed are saved together.
                store.journal.commit(
                    [("crm", name, _stamped(state, record)) for name, record in changed]
                )
        return JSONResponse(results)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if status == 405:
            return _error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed")
        return _error(404, "NOT_FOUND", "The requested resource does not exist")

    routes = [
        Route("/services/oauth2/token", token, methods=["POST"]),
        Route(f"{API}/query", rest(query), methods=["GET"]),
        Route(f"{API}/query/", rest(query), methods=["GET"]),
        Route(f"{API}/queryAll", rest(query), methods=["GET"]),
        Route(f"{API}/queryAll/", rest(query), methods=["GET"]),
        Route(f"{API}/query/{{cursor}}", rest(query_more), methods=["GET"]),
        Route(f"{API}/queryAll/{{cursor}}", rest(query_more), methods=["GET"]),
        Route(f"{API}/composite/sobjects", rest(collections), methods=["PATCH"]),
        Route(f"{API}/sobjects/{{object}}/{{record_id}}", rest(sobject), methods=["GET", "PATCH"]),
        Route(f"{API}/sobjects/{{object}}/{{field}}/{{value}}", rest(upsert), methods=["PATCH"]),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: not_found},
        middleware=[Middleware(CatchAll, system="crm", errors=ERRORS)],
    )
