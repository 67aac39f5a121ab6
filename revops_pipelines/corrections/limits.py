"""What each target system accepts in one write, checked before a correction is planned.

A payload the target would refuse is not planned: its finding stays review with the reason,
instead of turning into a dead letter later.
"""

from __future__ import annotations

import json
from typing import Any

STRIPE_KEY_MAX = 255
STRIPE_METADATA_KEYS_MAX = 50
STRIPE_METADATA_KEY_MAX = 40
STRIPE_METADATA_VALUE_MAX = 500
STRIPE_STRING_MAX = 5000
CRM_COLLECTION_MAX = 200
ERP_EXTERNAL_ID_MAX = 255
ERP_TEXT_MAX = 4000


def check_idempotency_key(key: str) -> str | None:
    if not key or len(key) > STRIPE_KEY_MAX:
        return f"idempotency key must be 1 to {STRIPE_KEY_MAX} characters, is {len(key)}"
    return None


def check_stripe(payload: dict[str, Any]) -> str | None:
    """Stripe: metadata ≤ 50 keys, key ≤ 40 chars, value ≤ 500 chars; strings are strings."""
    metadata = payload.get("metadata", {})
    if not isinstance(metadata, dict):
        return "metadata must be a hash"
    if len(metadata) > STRIPE_METADATA_KEYS_MAX:
        return f"metadata has {len(metadata)} keys, Stripe allows {STRIPE_METADATA_KEYS_MAX}"
    for key, value in metadata.items():
        if len(key) > STRIPE_METADATA_KEY_MAX:
            return f"metadata key {key[:50]!r} is longer than {STRIPE_METADATA_KEY_MAX} characters"
        if not isinstance(value, str):
            return f"metadata[{key}] must be a string"
        if len(value) > STRIPE_METADATA_VALUE_MAX:
            return f"metadata[{key}] is longer than {STRIPE_METADATA_VALUE_MAX} characters"
    for name, value in payload.items():
        if name == "metadata":
            continue
        if isinstance(value, dict | list):
            return f"{name} must be a string"
        if isinstance(value, str) and len(value) > STRIPE_STRING_MAX:
            return f"{name} is longer than {STRIPE_STRING_MAX} characters"
    return None


def check_erp(external_id: str, payload: dict[str, Any]) -> str | None:
    """NetSuite: external ids of letters, digits, `_` and `-` up to 255; text fields bounded."""
    if not external_id or len(external_id) > ERP_EXTERNAL_ID_MAX:
        return f"external id must be 1 to {ERP_EXTERNAL_ID_MAX} characters"
    if not all(ch.isalnum() or ch in "_-" for ch in external_id):
        return f"external id {external_id!r} may hold only letters, digits, '_' and '-'"
    for name, value in payload.items():
        if isinstance(value, str) and len(value) > ERP_TEXT_MAX:
            return f"{name} is longer than {ERP_TEXT_MAX} characters"
    return None


def check_crm(payload: dict[str, Any]) -> str | None:
    """Salesforce: one flat record with its id; text fields are strings."""
    if not payload.get("Id"):
        return "a CRM record update needs the record's Id"
    for name, value in payload.items():
        if name == "attributes":
            continue
        if isinstance(value, dict | list):
            return f"{name} must be a scalar"
        if isinstance(value, str) and len(value) > 32_768:
            return f"{name} is longer than 32768 characters"
    return None


def check(target: str, external_id: str, payload: dict[str, Any], key: str) -> str | None:
    """The first reason the target would refuse this write, or None."""
    problem = check_idempotency_key(key)
    if problem:
        return problem
    if target == "billing":
        return check_stripe(payload)
    if target == "erp":
        return check_erp(external_id, payload)
    if target == "crm":
        return check_crm(payload)
    return f"unknown target {target!r}"


def canonical_json(payload: Any) -> str:
    """One text per payload: the idempotency key hashes it, so it must not depend on order."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
