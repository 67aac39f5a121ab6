"""CRM client (Salesforce REST subset): OAuth client credentials, SOQL queryAll, modstamp cursor."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

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
    shared,
)

_COMMON = ("Id", "IsDeleted", "SystemModstamp")

# The streams: sObject, primary key, change cursor, the fields selected.
# fmt: off
STREAMS: dict[str, StreamSpec] = {
    spec.name: spec
    for spec in (
        StreamSpec("account", source="Account", primary_key="Id", cursor="SystemModstamp",
                   fields=_COMMON + ("Name", "ParentId", "BillingStreet", "BillingCity",
                                     "BillingState", "BillingPostalCode", "BillingCountry",
                                     "CurrencyIsoCode", "Legal_Entity__c", "Tax_Jurisdiction__c",
                                     "Billing_Customer_Id__c", "CreatedDate", "LastModifiedDate")),
        StreamSpec("opportunity", source="Opportunity", primary_key="Id",
                   cursor="SystemModstamp",
                   fields=_COMMON + ("AccountId", "Name", "StageName", "IsClosed", "IsWon",
                                     "CloseDate", "Amount", "CurrencyIsoCode", "Type",
                                     "Contract_Term_Months__c", "Billing_Subscription_Id__c",
                                     "CreatedDate", "LastModifiedDate")),
        StreamSpec("opportunity_line_item", source="OpportunityLineItem", primary_key="Id",
                   cursor="SystemModstamp",
                   fields=_COMMON + ("OpportunityId", "Product2Id", "ProductCode", "Quantity",
                                     "UnitPrice", "TotalPrice")),
        StreamSpec("product", source="Product2", primary_key="Id", cursor="SystemModstamp",
                   fields=_COMMON + ("ProductCode", "Name", "Family", "IsActive")),
        StreamSpec("contract", source="Contract", primary_key="Id", cursor="SystemModstamp",
                   fields=_COMMON + ("AccountId", "StartDate", "EndDate", "ContractTerm",
                                     "Status", "Opportunity__c")),
    )
}
# fmt: on


@dataclass
class _Session:
    """An OAuth token and the instance URL that came with it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    token: str | None = None
    instance_url: str | None = None


# `attributes` comes with every record without being selected.
RECORD_EXTRAS = ("attributes",)

# Ids per `WHERE Id IN (...)` query, well under SOQL's 100,000-character limit.
ID_CHUNK = 200


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_sf_datetime(value: str) -> datetime:
    """`2025-01-02T03:04:05.000+0000` (also `Z` and `+00:00` forms) as an aware datetime."""
    text = value.strip().replace("Z", "+0000")
    if len(text) >= 6 and text[-3] == ":" and text[-6] in "+-":
        text = text[:-3] + text[-2:]
    for pattern in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    raise ValueError(f"not a Salesforce datetime: {value!r}")


def soql_datetime(moment: datetime) -> str:
    """SOQL datetime literal: unquoted, UTC, no fractions of a second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CrmClient(BaseClient):
    """Reads CRM objects with SOQL; a 401 INVALID_SESSION_ID fetches a new token and retries."""

    system = "crm"

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        client_secret: str,
        api_version: str = "v59.0",
        overlap: timedelta = timedelta(minutes=5),
        batch_size: int = 2000,
        **options: Any,
    ) -> None:
        super().__init__(base_url, **options)
        self.api_version = api_version
        self._client_id = client_id
        self._client_secret = client_secret
        self._overlap = overlap
        self._batch_size = batch_size
        # One token for every client sharing this allowance: streams read at the same time
        # log in once, not once each.
        self._session = shared(("crm-session", self._allowance, client_id, client_secret), _Session)

    def __repr__(self) -> str:
        return f"CrmClient({self.base_url!r})"

    def _auth_headers(self) -> dict[str, str]:
        session = self._session
        with session.lock:
            if session.token is None:
                self._fetch_token()
            return {"Authorization": f"Bearer {session.token}"}

    def _fetch_token(self) -> None:
        """Log in (the session's lock is held); the token goes to every client of the session."""
        with self._allowance.turn():
            self.stats.add(requests=1)
            response = self._http.post(
                "/services/oauth2/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                },
            )
        body = response_body(response)
        if not response.is_success or not isinstance(body, dict) or "access_token" not in body:
            error = body if isinstance(body, dict) else {}
            raise default_error(
                self.system,
                response,
                code=str(error.get("error") or "token_error"),
                message=str(error.get("error_description") or "token request refused"),
                record_id=None,
            )
        self._session.token = body["access_token"]
        self._session.instance_url = str(body.get("instance_url") or self.base_url).rstrip("/")

    def _error_from_response(
        self, response: httpx.Response, *, record_id: str | None
    ) -> ConnectorError:
        body = response_body(response)
        first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else {}
        code = str(first.get("errorCode") or f"http_{response.status_code}")
        message = str(first.get("message") or response.reason_phrase)
        fields = first.get("fields") or []
        field_name = fields[0] if isinstance(fields, list) and fields else None
        if response.status_code == 401 and code == "INVALID_SESSION_ID":
            refused = response.request.headers.get("Authorization", "").removeprefix("Bearer ")
            with self._session.lock:
                if self._session.token == refused:  # else another client has logged in again
                    self._session.token = None
            return ConnectorError(
                system=self.system,
                status=401,
                code=code,
                message=message,
                retryable=True,
                record_id=record_id,
                retry_after=0.0,
            )
        error = default_error(
            self.system,
            response,
            code=code,
            message=message,
            record_id=record_id,
            field=field_name,
        )
        if response.status_code == 403 and code == "REQUEST_LIMIT_EXCEEDED":
            error.retryable = True
        return error

    def _rest(self, path: str) -> str:
        return f"{self._session.instance_url or self.base_url}{path}"

    def query_pages(
        self, soql: str, *, include_deleted: bool = True, stream: str | None = None
    ) -> Iterator[tuple[list[dict[str, Any]], httpx.Response]]:
        """Batches of a SOQL query, following `nextRecordsUrl` until `done`."""
        endpoint = "queryAll" if include_deleted else "query"
        headers = {"Sforce-Query-Options": f"batchSize={self._batch_size}"}
        response = self.request(
            "GET",
            self._rest(f"/services/data/{self.api_version}/{endpoint}"),
            params={"q": soql},
            headers=headers,
            stream=stream,
        )
        while True:
            body = self._json(response, record_id=None)
            yield list(body.get("records") or []), response
            next_url = body.get("nextRecordsUrl")
            if body.get("done", True) or not next_url:
                return
            response = self.request("GET", self._rest(next_url), headers=headers, stream=stream)

    def read(self, spec: StreamSpec, *, cursor: dict[str, Any] | None) -> Iterator[Page]:
        """Records changed since the cursor (all with no cursor), deletes included."""
        since = parse_sf_datetime(cursor["since"]) if cursor and cursor.get("since") else None
        soql = f"SELECT {', '.join(spec.fields)} FROM {spec.source}"
        if since is not None:
            # Records committed late can carry an older stamp: the cursor lags the
            # server clock by the overlap, and re-read records are upserted by id.
            soql += f" WHERE {spec.cursor} > {soql_datetime(since)}"
        newest = since
        now = None
        for records, response in self.query_pages(soql, stream=spec.name):
            now = server_time(response)
            changes = []
            for record in records:
                stamp = record.get(spec.cursor) if isinstance(record, dict) else None
                if isinstance(stamp, str):
                    try:
                        moment = parse_sf_datetime(stamp)
                    except ValueError:
                        moment = None
                    if moment is not None and (newest is None or moment > newest):
                        newest = moment
                deleted = isinstance(record, dict) and record.get("IsDeleted") is True
                changes.append(
                    Change(record, deleted=deleted, cursor_value=stamp if stamp else None)
                )
            yield Page(changes)
        next_since = newest
        if newest is not None and now is not None:
            next_since = min(newest, datetime.fromtimestamp(now, UTC) - self._overlap)
            if since is not None:
                next_since = max(next_since, since)
        yield Page([], cursor={"since": soql_datetime(next_since) if next_since else None})

    def fetch_notified(self, spec: StreamSpec, ids: list[str]) -> Iterator[Page]:
        """The current state of the named records, deleted ones included (fetch-on-notify)."""
        for start in range(0, len(ids), ID_CHUNK):
            members = ", ".join(_quote(i) for i in ids[start : start + ID_CHUNK])
            soql = f"SELECT {', '.join(spec.fields)} FROM {spec.source} WHERE Id IN ({members})"
            for records, _ in self.query_pages(soql, stream=spec.name):
                yield Page(
                    [
                        Change(
                            r,
                            deleted=r.get("IsDeleted") is True,
                            cursor_value=r.get(spec.cursor) or None,
                        )
                        for r in records
                    ]
                )


def parse_limit_info(value: str | None) -> tuple[int, int] | None:
    """`Sforce-Limit-Info: api-usage=25/15000` → (used, allowed) of the daily API allowance."""
    if not value:
        return None
    for part in value.split(","):
        name, _, usage = part.strip().partition("=")
        if name == "api-usage":
            used, _, allowed = usage.partition("/")
            if used.strip().isdigit() and allowed.strip().isdigit():
                return int(used), int(allowed)
    return None


class CrmWriter(CrmClient):
    """sObject Collections updates and single-record reads, with the API allowance they leave."""

    COLLECTION_LIMIT = 200

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.allowance: tuple[int, int] | None = None

    def _note_allowance(self, response: httpx.Response) -> None:
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        if usage is not None:
            self.allowance = usage

    def update_records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """PATCH /composite/sobjects with allOrNone=false: one result per record, in order."""
        if len(records) > self.COLLECTION_LIMIT:
            raise ValueError(f"at most {self.COLLECTION_LIMIT} records per call")
        response = self.request(
            "PATCH",
            self._rest(f"/services/data/{self.api_version}/composite/sobjects"),
            json={"allOrNone": False, "records": records},
        )
        self._note_allowance(response)
        return self._json(response, record_id=None)

    def get_record(self, object_name: str, record_id: str) -> dict[str, Any] | None:
        try:
            response = self.request(
                "GET",
                self._rest(f"/services/data/{self.api_version}/sobjects/{object_name}/{record_id}"),
                record_id=record_id,
            )
        except ConnectorError as error:
            if error.status == 404:
                return None
            raise
        self._note_allowance(response)
        return self._json(response, record_id=record_id)
