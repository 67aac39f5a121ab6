"""How one correction is sent to its system, and how its effect is read back.

Sending answers one `Outcome`; reading back answers whether the target already holds what
the correction writes, which is how a lost answer is resolved without trusting the vendor.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import httpx

from revops_pipelines.connectors.base import ConnectorError

# A 4xx the target may answer under a race or a transient state: read back, then retry.
VERIFY_CODES = frozenset({"DUP_RCRD"})
CRM_RETRY_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"})


@dataclass(frozen=True)
class Outcome:
    """applied; retry (certainly not applied: throttled); unknown (maybe applied); failed;
    waiting (a record it refers to is not in the target yet: nothing was sent)."""

    status: str
    http_status: int | None = None
    response: str | None = None
    target_id: str | None = None
    retry_after: float | None = None
    code: str = ""


def from_error(error: BaseException) -> Outcome:
    if isinstance(error, ConnectorError):
        text = json.dumps({"code": error.code, "message": error.message})
        if error.code in VERIFY_CODES:
            status = "unknown"
        elif error.status in (408, 429, 409) or error.code in CRM_RETRY_CODES:
            status = "retry"
        elif error.retryable:
            status = "unknown"
        else:
            status = "failed"
        return Outcome(status, error.status, text, retry_after=error.retry_after, code=error.code)
    if isinstance(error, httpx.TransportError):
        # The request may have reached the target: only reading it back can tell.
        return Outcome("unknown", None, f"{type(error).__name__}: {error}", code="transport")
    raise error


def _same(wanted: Any, held: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(held, bool):
        return wanted == held
    if isinstance(wanted, int | float) and isinstance(held, int | float):
        return abs(float(wanted) - float(held)) < 1e-9
    return wanted == held


def _holds_metadata(wanted: dict[str, Any], held: Any) -> bool:
    return isinstance(held, dict) and all(str(held.get(k)) == str(v) for k, v in wanted.items())


def holds(payload: dict[str, Any], record: dict[str, Any]) -> bool:
    """The record carries every plain field and every `{"id"}` reference of the payload."""
    for name, wanted in payload.items():
        held = record.get(name)
        if isinstance(wanted, dict):
            if "id" in wanted and set(wanted) <= {"id", "refName"}:
                if not isinstance(held, dict) or str(held.get("id")) != str(wanted["id"]):
                    return False
            elif name == "metadata" and not _holds_metadata(wanted, held):
                return False
            continue  # external-id references and sublists are checked by their effect
        if isinstance(wanted, list):
            continue
        if not _same(wanted, held):
            return False
    return True


class ErpTarget:
    """Upserts by external id and updates by internal id; resolves `{"externalId"}` refs."""

    system = "erp"
    REFS = {"entity": "customer", "customer": "customer"}
    # Posted transactions are created, never changed: an upsert finding one leaves it alone.
    CREATE_ONLY = frozenset({"invoice", "customerpayment"})

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self._ids: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def _internal_id(self, record_type: str, external_id: str) -> str | None:
        key = (record_type, external_id)
        with self._lock:
            known = self._ids.get(key)
        if known is not None:
            return known
        record = self.writer.get_record(record_type, f"eid:{external_id}")
        if record is None:
            return None
        with self._lock:
            self._ids[key] = str(record["id"])
        return str(record["id"])

    def _resolve(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        body = json.loads(json.dumps(payload))
        for name, record_type in self.REFS.items():
            ref = body.get(name)
            if isinstance(ref, dict) and "externalId" in ref:
                internal = self._internal_id(record_type, str(ref["externalId"]))
                if internal is None:
                    return None
                body[name] = {"id": internal}
        for line in (body.get("apply") or {}).get("items") or []:
            doc = line.get("doc")
            if isinstance(doc, dict) and "externalId" in doc:
                internal = self._internal_id("invoice", str(doc["externalId"]))
                if internal is None:
                    return None
                line["doc"] = {"id": internal}
        return body

    def prepare(self, action: dict[str, Any]) -> dict[str, Any] | Outcome:
        """The body to write, references resolved to internal ids; or the outcome without
        writing: `waiting` (a record it refers to is not in the ERP yet), `applied` (a posted
        transaction already there), or a failed read."""
        try:
            body = self._resolve(json.loads(action["payload"]))
            if body is None:
                return Outcome("waiting", response="a record it refers to is not in the ERP")
            if action["operation"] == "upsert" and action["record_type"] in self.CREATE_ONLY:
                existing = self.writer.get_record(
                    action["record_type"], f"eid:{action['external_id']}"
                )
                if existing is not None:
                    return Outcome(
                        "applied",
                        200,
                        "already in the ERP: a posted transaction is never edited",
                        target_id=str(existing.get("id")),
                    )
        except (ConnectorError, httpx.TransportError) as error:
            return from_error(error)
        return body

    def write(self, action: dict[str, Any], body: dict[str, Any]) -> Outcome:
        try:
            if action["operation"] == "upsert":
                internal = self.writer.upsert(action["record_type"], action["external_id"], body)
                if internal:
                    with self._lock:
                        self._ids[(action["record_type"], action["external_id"])] = internal
            else:
                internal = self.writer.update(action["record_type"], action["target_id"], body)
        except (ConnectorError, httpx.TransportError) as error:
            return from_error(error)
        return Outcome("applied", 204, None, target_id=internal)

    def verify(self, action: dict[str, Any]) -> Outcome | None:
        """`applied` when the ERP already holds the correction; None when it does not."""
        key = action["target_id"] if action["operation"] == "update" else None
        key = key or f"eid:{action['external_id']}"
        try:
            record = self.writer.get_record(action["record_type"], key)
        except (ConnectorError, httpx.TransportError) as error:
            return from_error(error)
        if record is None:
            return None
        if not holds(json.loads(action["payload"]), record):
            return None
        return Outcome("applied", 200, "read back", target_id=str(record.get("id")))


class BillingTarget:
    """Stripe updates with the plan's Idempotency-Key."""

    system = "billing"

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def prepare(self, action: dict[str, Any]) -> dict[str, Any]:
        return json.loads(action["payload"])

    def write(self, action: dict[str, Any], body: dict[str, Any]) -> Outcome:
        try:
            record = self.writer.update(
                action["record_type"],
                action["target_id"] or action["external_id"],
                body,
                idempotency_key=action["idempotency_key"],
            )
        except (ConnectorError, httpx.TransportError) as error:
            return from_error(error)
        return Outcome("applied", 200, None, target_id=str(record.get("id")))

    def verify(self, action: dict[str, Any]) -> Outcome | None:
        try:
            record = self.writer.get_record(
                action["record_type"], action["target_id"] or action["external_id"]
            )
        except (ConnectorError, httpx.TransportError) as error:
            return from_error(error)
        if record is None or not holds(json.loads(action["payload"]), record):
            return None
        return Outcome("applied", 200, "read back", target_id=str(record.get("id")))


class CrmTarget:
    """sObject Collections updates, up to 200 records a call, one result per record."""

    system = "crm"

    def __init__(self, writer: Any, *, max_allowance_share: float) -> None:
        self.writer = writer
        self.max_allowance_share = max_allowance_share

    def exhausted(self) -> bool:
        """The share of the daily API allowance this org lets integrations use is spent."""
        usage = self.writer.allowance
        return bool(usage and usage[1] and usage[0] / usage[1] >= self.max_allowance_share)

    @staticmethod
    def _record(action: dict[str, Any]) -> dict[str, Any]:
        payload = json.loads(action["payload"])
        fields = {k: v for k, v in payload.items() if k != "Id"}
        return {"attributes": {"type": action["record_type"]}, "id": payload["Id"], **fields}

    def send_batch(self, actions: list[dict[str, Any]]) -> list[Outcome]:
        try:
            results = self.writer.update_records([self._record(a) for a in actions])
        except (ConnectorError, httpx.TransportError) as error:
            return [from_error(error)] * len(actions)
        outcomes = []
        for result in results:
            if result.get("success"):
                outcomes.append(Outcome("applied", 200, None, target_id=result.get("id")))
                continue
            errors = result.get("errors") or [{}]
            code = str(errors[0].get("statusCode") or "UNKNOWN")
            status = "retry" if code in CRM_RETRY_CODES else "failed"
            outcomes.append(Outcome(status, 400, json.dumps(errors), code=code))
        return outcomes

    def verify(self, action: dict[str, Any]) -> Outcome | None:
        payload = json.loads(action["payload"])
        try:
            record = self.writer.get_record(action["record_type"], payload["Id"])
        except (ConnectorError, httpx.TransportError) as error:
            return from_error(error)
        fields = {k: v for k, v in payload.items() if k != "Id"}
        if record is None or not holds(fields, record):
            return None
        return Outcome("applied", 200, "read back", target_id=payload["Id"])
