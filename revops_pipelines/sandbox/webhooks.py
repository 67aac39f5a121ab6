"""Outbound webhooks: every write to the sandbox's state is delivered, signed, at least once.

Billing delivers each new `/v1/events` entry as Stripe does (`Stripe-Signature`); the
CRM and the ERP send what a small outbound script there would send: the record's type
and id, signed with Standard Webhooks. Failed deliveries (no answer, or not 2xx) are
retried with exponential backoff; the webhook faults drop, repeat, hold back and delay
deliveries so receivers can be tested against what real senders do.
"""

from __future__ import annotations

import heapq
import json
import logging
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import standardwebhooks
import stripe

from revops_pipelines.sandbox.faults import FaultSpec
from revops_pipelines.sandbox.state import Collection

logger = logging.getLogger("revops_pipelines.sandbox.webhooks")


@dataclass(frozen=True)
class WebhookSecrets:
    """Billing's is Stripe's `whsec_...` key; the CRM's and the ERP's are `whsec_<base64>`."""

    billing: str
    crm: str
    erp: str


@dataclass
class _Delivery:
    source: str
    message_id: str
    body: bytes
    attempt: int = 0


def _message(collection: Collection, record: dict[str, Any], created: bool) -> bytes:
    """What the CRM or ERP script sends: the change and which record, never the record itself."""
    kind = "deleted" if record.get("IsDeleted") is True else "created" if created else "updated"
    body = {
        "type": f"record.{kind}",
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "data": {"object": collection.name, "id": str(record.get(collection.id_field))},
    }
    return json.dumps(body, separators=(",", ":")).encode()


class Deliverer:
    """A delivery queue with a few sending threads; `listen` is the state store's listener."""

    def __init__(
        self,
        url: str,
        *,
        secrets: WebhookSecrets,
        faults: Mapping[str, FaultSpec] | None = None,
        seed: int | None = None,
        workers: int = 4,
        max_attempts: int = 8,
        backoff_s: float = 0.25,
        backoff_max_s: float = 30.0,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self._secrets = secrets
        self._standard = {
            source: standardwebhooks.Webhook(getattr(secrets, source)) for source in ("crm", "erp")
        }
        self._faults = dict(faults or {})
        self._random = random.Random(seed)
        self._workers = workers
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._http = httpx.Client(timeout=timeout_s)
        self._queue: list[tuple[float, int, _Delivery]] = []
        self._sequence = 0
        self._active = 0
        self._stopping = False
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self.stats: Counter[str] = Counter()

    # -- what to deliver

    def listen(self, collection: Collection, record: dict[str, Any], created: bool) -> None:
        if collection.system == "billing":
            if collection.name == "events" and created:
                body = json.dumps(record, separators=(",", ":")).encode()
                self.submit("billing", str(record["id"]), body)
            return
        message_id = "msg_" + secrets.token_hex(12)
        self.submit(collection.system, message_id, _message(collection, record, created))

    def submit(self, source: str, message_id: str, body: bytes) -> None:
        faults = self._faults.get(source, FaultSpec())
        with self._cond:
            self.stats["changes"] += 1
            if self._random.random() < faults.webhook_drop_rate:
                self.stats["dropped"] += 1
                logger.info("webhook dropped source=%s id=%s (fault)", source, message_id)
                return
            delay = faults.webhook_delay_ms / 1000.0
            if self._random.random() < faults.webhook_reorder_rate:
                self.stats["held_back"] += 1
                delay += self._random.uniform(0.05, 0.5)
            self._push(time.monotonic() + delay, _Delivery(source, message_id, body))
            if self._random.random() < faults.webhook_duplicate_rate:
                self.stats["duplicated"] += 1
                again = time.monotonic() + delay + self._random.uniform(0.0, 0.2)
                self._push(again, _Delivery(source, message_id, body))

    def _push(self, due: float, delivery: _Delivery) -> None:
        self._sequence += 1
        heapq.heappush(self._queue, (due, self._sequence, delivery))
        self._cond.notify()

    # -- sending

    def _headers(self, delivery: _Delivery) -> dict[str, str]:
        """Signed at the moment of sending, as real senders do, so a retry is never stale."""
        text = delivery.body.decode()
        headers = {"Content-Type": "application/json"}
        if delivery.source == "billing":
            headers["Stripe-Signature"] = stripe.WebhookSignature.generate_signature_header(
                text, self._secrets.billing
            )
            return headers
        now = datetime.now(UTC)
        headers["webhook-id"] = delivery.message_id
        headers["webhook-timestamp"] = str(int(now.timestamp()))
        headers["webhook-signature"] = self._standard[delivery.source].sign(
            delivery.message_id, now, text
        )
        return headers

    def _send(self, delivery: _Delivery) -> bool:
        try:
            response = self._http.post(
                f"{self.url}/webhooks/{delivery.source}",
                content=delivery.body,
                headers=self._headers(delivery),
            )
        except httpx.HTTPError as error:
            logger.info("webhook attempt failed source=%s error=%s", delivery.source, error)
            return False
        return response.is_success

    def _work(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    now = time.monotonic()
                    if self._queue and self._queue[0][0] <= now:
                        _, _, delivery = heapq.heappop(self._queue)
                        self._active += 1
                        break
                    self._cond.wait(self._queue[0][0] - now if self._queue else None)
            delivered = self._send(delivery)
            with self._cond:
                self._active -= 1
                delivery.attempt += 1
                if delivered:
                    self.stats["delivered"] += 1
                elif delivery.attempt < self.max_attempts:
                    self.stats["retried"] += 1
                    wait = min(self.backoff_max_s, self.backoff_s * 2 ** (delivery.attempt - 1))
                    self._push(time.monotonic() + wait * self._random.uniform(0.8, 1.2), delivery)
                else:
                    self.stats["gave_up"] += 1
                    logger.warning(
                        "webhook given up source=%s id=%s after %d attempts",
                        delivery.source,
                        delivery.message_id,
                        delivery.attempt,
                    )
                self._cond.notify_all()

    def start(self) -> Deliverer:
        for number in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"webhooks-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until nothing is queued or being sent; False when `timeout` passes first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def stop(self) -> None:
        """Stop sending; what is still queued is abandoned (a sender that goes away)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=15)
        self._http.close()
