"""Signature checks of the two webhook schemes, through the schemes' own libraries.

Billing uses Stripe's `Stripe-Signature`; the CRM and the ERP use Standard Webhooks.
Both are checked on the raw bytes with a tolerance of 300 s either way; a request
that fails says why with one of the `REASON_*` codes, so refusals can be counted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import standardwebhooks
import stripe

TOLERANCE_S = 300

REASON_MISSING_SIGNATURE = "missing_signature"
REASON_BAD_SIGNATURE = "bad_signature"
REASON_OTHER_SOURCE = "other_source_secret"
REASON_TIMESTAMP = "timestamp_outside_tolerance"


class SignatureRefused(Exception):
    """A request whose signature cannot be proven; `reason` is one of the REASON_* codes."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Verifier(Protocol):
    scheme: str

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float) -> None: ...


def _check_time(timestamp: str, *, now: float) -> None:
    try:
        moment = float(timestamp)
    except ValueError:
        raise SignatureRefused(REASON_BAD_SIGNATURE) from None
    if abs(now - moment) > TOLERANCE_S:
        raise SignatureRefused(REASON_TIMESTAMP)


@dataclass(frozen=True)
class StripeVerifier:
    """`Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`; only `v1` values count, never `v0`."""

    secret: str
    scheme: str = "stripe"

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float) -> None:
        header = headers.get("stripe-signature")
        if not header:
            raise SignatureRefused(REASON_MISSING_SIGNATURE)
        stamps = [part[2:] for part in header.split(",") if part.startswith("t=")]
        if len(stamps) != 1:
            raise SignatureRefused(REASON_BAD_SIGNATURE)
        # Stripe's helper only refuses old timestamps; a signature from the future is refused here.
        _check_time(stamps[0], now=now)
        try:
            stripe.WebhookSignature.verify_header(body, header, self.secret, TOLERANCE_S)
        except (stripe.SignatureVerificationError, UnicodeDecodeError):
            raise SignatureRefused(REASON_BAD_SIGNATURE) from None


@dataclass(frozen=True)
class StandardVerifier:
    """Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<b64> ...`."""

    secret: str
    scheme: str = "standard"

    def verify(self, body: bytes, headers: Mapping[str, str], *, now: float) -> None:
        timestamp = headers.get("webhook-timestamp")
        if not headers.get("webhook-signature") or not timestamp:
            raise SignatureRefused(REASON_MISSING_SIGNATURE)
        _check_time(timestamp, now=now)
        wanted = {
            name: headers.get(name, "")
            for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
        }
        try:
            standardwebhooks.Webhook(self.secret).verify(body, wanted, json_parse=False)
        except (standardwebhooks.WebhookVerificationError, ValueError):
            # ValueError covers a signature list that is not `version,base64` pairs.
            raise SignatureRefused(REASON_BAD_SIGNATURE) from None


def verifiers(secrets: Mapping[str, str]) -> dict[str, Verifier]:
    """One verifier per source: `billing` signs like Stripe, the others like Standard Webhooks."""
    return {
        source: StripeVerifier(secret) if source == "billing" else StandardVerifier(secret)
        for source, secret in secrets.items()
    }


def check(
    source: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    verifiers: Mapping[str, Verifier],
    now: float | None = None,
) -> None:
    """Raise SignatureRefused unless `source`'s secret signed this request.

    A request signed with another source's secret is told apart from a bad one,
    since it means a sender is configured with the wrong endpoint or secret.
    """
    now = time.time() if now is None else now
    own = verifiers[source]
    try:
        own.verify(body, headers, now=now)
    except SignatureRefused as refused:
        if refused.reason != REASON_BAD_SIGNATURE:
            raise
        for other, verifier in verifiers.items():
            if other == source or verifier.scheme != own.scheme:
                continue
            try:
                verifier.verify(body, headers, now=now)
            except SignatureRefused:
                continue
            raise SignatureRefused(REASON_OTHER_SOURCE) from None
        raise
