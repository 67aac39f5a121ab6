"""ERP client (NetSuite REST subset): SuiteQL read in `id > last ORDER BY id` windows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from revops_pipelines.connectors.base import (
    BaseClient,
    Change,
    ConnectorError,
    Page,
    StreamSpec,
    default_error,
    response_body,
    server_time,
)

_TRANSACTION = (
    "id", "type", "tranid", "trandate", "entity", "subsidiary", "currency", "externalid",
    "foreigntotal", "foreigntaxtotal", "foreignamountremaining", "status",
    "custbody_billing_subscription_id", "datecreated", "lastmodifieddate",
)  # fmt: skip

# The streams: SuiteQL table, primary key, change cursor (None: read whole, or for the
# transactions that changed), the columns selected, reading options.
# fmt: off
STREAMS: dict[str, StreamSpec] = {
    spec.name: spec
    for spec in (
        StreamSpec("subsidiary", source="subsidiary", primary_key="id",
                   cursor="lastmodifieddate",
                   fields=("id", "name", "country", "currency", "custrecord_legal_entity_code",
                           "lastmodifieddate")),
        # No change column: small, read whole every run.
        StreamSpec("currency", source="currency", primary_key="id", cursor=None,
                   fields=("id", "symbol", "name")),
        StreamSpec("currency_rate", source="currencyrate", primary_key="id", cursor=None,
                   fields=("id", "basecurrency", "transactioncurrency", "exchangerate",
                           "effectivedate")),
        StreamSpec("customer", source="customer", primary_key="id", cursor="lastmodifieddate",
                   fields=("id", "externalid", "entityid", "companyname", "email", "subsidiary",
                           "currency", "custentity_crm_account_id",
                           "custentity_tax_jurisdiction", "isinactive", "datecreated",
                           "lastmodifieddate")),
        StreamSpec("item", source="item", primary_key="id", cursor="lastmodifieddate",
                   fields=("id", "itemid", "displayname", "externalid", "isinactive",
                           "lastmodifieddate")),
        StreamSpec("invoice", source="transaction", primary_key="id", cursor="lastmodifieddate",
                   fields=_TRANSACTION, options={"type": "CustInvc", "record_type": "invoice"}),
        StreamSpec("customer_payment", source="transaction", primary_key="id",
                   cursor="lastmodifieddate", fields=_TRANSACTION,
                   options={"type": "CustPymt", "record_type": "customerpayment"}),
        StreamSpec("credit_memo", source="transaction", primary_key="id",
                   cursor="lastmodifieddate", fields=_TRANSACTION,
                   options={"type": "CustCred", "record_type": "creditmemo"}),
        # Children without a change column: read for the transactions that changed.
        StreamSpec("transaction_line", source="transactionline", primary_key="id", cursor=None,
                   fields=("id", "transaction", "linesequencenumber", "item", "quantity", "rate",
                           "foreignamount", "memo"),
                   options={"parent_fields": ("transaction",)}),
        StreamSpec("previous_transaction_link", source="previoustransactionlink",
                   primary_key="id", cursor=None,
                   fields=("id", "previousdoc", "nextdoc", "linktype", "foreignamount"),
                   options={"parent_fields": ("previousdoc", "nextdoc")}),
    )
}
# fmt: on

# SuiteQL items may carry `links`, which is not a column.
RECORD_EXTRAS = ("links",)

PAGE_LIMIT = 1000
PARENT_CHUNK = 200


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ErpClient(BaseClient):
    """Bearer token; bulk reads through SuiteQL, never the id-only record lists."""

    system = "erp"
    api_version = "v1"

    def __init__(
        self,
        base_url: str,
        *,
        token: str,
        overlap: timedelta = timedelta(minutes=5),
        **options: Any,
    ) -> None:
        super().__init__(base_url, **options)
        self._token = token
        self._overlap = overlap

    def __repr__(self) -> str:
        return f"ErpClient({self.base_url!r})"

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def _error_from_response(
        self, response: httpx.Response, *, record_id: str | None
    ) -> ConnectorError:
        body = response_body(response)
        body = body if isinstance(body, dict) else {}
        details = body.get("o:errorDetails") or []
        first = details[0] if isinstance(details, list) and details else {}
        first = first if isinstance(first, dict) else {}
        return default_error(
            self.system,
            response,
            code=str(
                first.get("o:errorCode") or body.get("title") or f"http_{response.status_code}"
            ),
            message=str(first.get("detail") or body.get("title") or response.reason_phrase),
            record_id=record_id,
        )

    def suiteql(
        self, query: str, *, limit: int = PAGE_LIMIT, offset: int = 0, stream: str | None = None
    ) -> tuple[dict[str, Any], httpx.Response]:
        response = self.request(
            "POST",
            "/services/rest/query/v1/suiteql",
            params={"limit": limit, "offset": offset},
            json={"q": query},
            headers={"Prefer": "transient"},
            stream=stream,
        )
        return self._json(response, record_id=None), response

    def query_windows(
        self, table: str, where: list[str], *, columns: str = "*", stream: str | None = None
    ) -> Iterator[tuple[list[dict[str, Any]], httpx.Response]]:
        """All rows matching `where`, one `id > last ORDER BY id` window per request.

        Large offsets are slow or refused in NetSuite, so each page starts a new
        query after the last id seen instead of moving the offset.
        """
        last: str | None = None
        while True:
            conditions = list(where)
            if last is not None:
                conditions.append(f"id > {_quote(last)}")
            query = f"SELECT {columns} FROM {table}"
            if conditions:
                query += " WHERE " + " AND ".join(conditions)
            query += " ORDER BY id"
            body, response = self.suiteql(query, stream=stream)
            items = list(body.get("items") or [])
            yield items, response
            if not body.get("hasMore") or not items:
                return
            last = str(items[-1]["id"])

    def query_offsets(
        self, query: str, *, stream: str | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """A small result paged by offset (child rows of a bounded set of parents)."""
        offset = 0
        while True:
            body, _ = self.suiteql(query, offset=offset, stream=stream)
            items = list(body.get("items") or [])
            yield items
            if not body.get("hasMore") or not items:
                return
            offset += PAGE_LIMIT

    def read(self, spec: StreamSpec, *, cursor: dict[str, Any] | None) -> Iterator[Page]:
        if "parent_fields" in spec.options:
            yield from self._read_children(spec, cursor=cursor)
            return
        where = [f"type = {_quote(spec.options['type'])}"] if "type" in spec.options else []
        since = (cursor or {}).get("since")
        if spec.cursor and since:
            where.append(f"{spec.cursor} > {_quote(since)}")
        newest, now = None, None
        for items, response in self.query_windows(spec.source, where, stream=spec.name):
            now = server_time(response)
            changes = []
            for item in items:
                stamp = item.get(spec.cursor) if spec.cursor and isinstance(item, dict) else None
                moment = _parse_iso(stamp) if isinstance(stamp, str) else None
                if moment and (newest is None or moment > newest):
                    newest = moment
                changes.append(Change(item, cursor_value=stamp if isinstance(stamp, str) else None))
            yield Page(changes)
        yield Page([], cursor={"since": self._next_since(since, newest, now)})

    def _next_since(
        self, since: str | None, newest: datetime | None, now: float | None
    ) -> str | None:
        if newest is None:
            return since
        # The cursor lags the server clock by the overlap: late commits are re-read.
        if now is not None:
            newest = min(newest, datetime.fromtimestamp(now, UTC) - self._overlap)
        previous = _parse_iso(since) if since else None
        if previous is not None:
            newest = max(newest, previous)
        return _iso(newest)

    def fetch_notified(self, spec: StreamSpec, ids: list[str]) -> Iterator[Page]:
        """The current state of the named records; for a child stream, ids are its parents'."""
        if "parent_fields" in spec.options:
            yield from self._children_of(spec, ids)
            return
        kind = [f"type = {_quote(spec.options['type'])}"] if "type" in spec.options else []
        for start in range(0, len(ids), PARENT_CHUNK):
            members = ", ".join(_quote(i) for i in ids[start : start + PARENT_CHUNK])
            where = [*kind, f"id IN ({members})"]
            for items, _ in self.query_windows(spec.source, where, stream=spec.name):
                yield Page(
                    [
                        Change(i, cursor_value=i.get(spec.cursor) if spec.cursor else None)
                        for i in items
                    ]
                )

    def _children_of(self, spec: StreamSpec, parents: list[str]) -> Iterator[Page]:
        """Child rows of the parents, replacing the stored children of each parent chunk."""
        fields = spec.options["parent_fields"]
        for start in range(0, len(parents), PARENT_CHUNK):
            chunk = parents[start : start + PARENT_CHUNK]
            members = ", ".join(_quote(p) for p in chunk)
            condition = " OR ".join(f"{f} IN ({members})" for f in fields)
            query = f"SELECT * FROM {spec.source} WHERE {condition} ORDER BY id"
            rows = [r for page in self.query_offsets(query, stream=spec.name) for r in page]
            yield Page([Change(r) for r in rows], replaces=(tuple(fields), chunk))

    def _read_children(self, spec: StreamSpec, *, cursor: dict[str, Any] | None) -> Iterator[Page]:
        since = (cursor or {}).get("since")
        if not since:
            yield from self._read_all_children(spec)
            return
        where = [f"lastmodifieddate > {_quote(since)}"]
        parents: list[str] = []
        newest, now = None, None
        for items, response in self.query_windows(
            "transaction", where, columns="id, lastmodifieddate", stream=spec.name
        ):
            now = server_time(response)
            for item in items:
                parents.append(str(item["id"]))
                moment = _parse_iso(str(item.get("lastmodifieddate") or ""))
                if moment and (newest is None or moment > newest):
                    newest = moment
        yield from self._children_of(spec, parents)
        yield Page([], cursor={"since": self._next_since(since, newest, now)})

    def _read_all_children(self, spec: StreamSpec) -> Iterator[Page]:
        """The whole child table in id windows (a full read tombstones what it did not see).

        The cursor is the newest transaction stamp, read before the children, so a
        transaction changed while they are read is read again by the next run.
        """
        body, response = self.suiteql(
            "SELECT max(lastmodifieddate) AS newest FROM transaction", stream=spec.name
        )
        items = body.get("items") or [{}]
        stamp = items[0].get("newest")
        newest = _parse_iso(stamp) if isinstance(stamp, str) else None
        now = server_time(response)
        for rows, _ in self.query_windows(spec.source, [], stream=spec.name):
            yield Page([Change(row) for row in rows])
        yield Page([], cursor={"since": self._next_since(None, newest, now)})


RECORD_PATH = "/services/rest/record/v1"


def _record_url(record_type: str, key: str) -> str:
    return f"{RECORD_PATH}/{record_type}/{quote(key, safe=':')}"


def _location_id(response: httpx.Response) -> str | None:
    """NetSuite answers a write with 204 and the record's URL in `Location`."""
    location = response.headers.get("Location") or ""
    tail = location.rstrip("/").rpartition("/")[2]
    return tail or None


class ErpWriter(ErpClient):
    """Record-service writes: upserts by external id, updates by internal id, reads back."""

    def upsert(self, record_type: str, external_id: str, body: dict[str, Any]) -> str | None:
        """PUT .../<type>/eid:<id>: creates the record or replaces its fields; its internal id."""
        response = self.request(
            "PUT", _record_url(record_type, f"eid:{external_id}"), json=body, record_id=external_id
        )
        return _location_id(response)

    def update(self, record_type: str, record_id: str, body: dict[str, Any]) -> str | None:
        response = self.request(
            "PATCH", _record_url(record_type, record_id), json=body, record_id=record_id
        )
        return _location_id(response) or record_id

    def get_record(self, record_type: str, key: str) -> dict[str, Any] | None:
        """The record by internal id or `eid:<external id>`; None when it does not exist."""
        try:
            return self.get_json(_record_url(record_type, key), record_id=key)
        except ConnectorError as error:
            if error.status == 404:
                return None
            raise
