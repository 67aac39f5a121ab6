"""The types and forms a state record must have (SOURCES.md), checked field by field.

Only fields the contract names are checked, and every one of them may be `null` or absent
(the real APIs leave many out) unless marked required; unknown fields pass untouched. What
is refused is a wrong type or form: a string where money goes, a date that is no date.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

# Deeper than this is no record any of the three APIs returns.
MAX_DEPTH = 32


class ContractError(ValueError):
    """A record field of the wrong type or form; `field` is its dotted path."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else "is not a string"


def _id(value: Any) -> str | None:
    if not isinstance(value, str):
        return "is not a string id"
    return "is blank" if not value.strip() else None


def _integer(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return "is not an integer"
    return None


def _number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "is not a number"
    return None if math.isfinite(value) else "is not a finite number"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "is not true or false"


def _unix(value: Any) -> str | None:
    if _integer(value) or not 0 <= value < 253402300800:
        return "is not Unix seconds"
    return None


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_SF_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?(Z|[+-]\d{2}:?\d{2})", re.ASCII
)
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})", re.ASCII
)


def _date(value: Any) -> str | None:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return "is not a date YYYY-MM-DD"
    try:
        date.fromisoformat(value)
    except ValueError:
        return "is not a calendar date"
    return None


def _datetime_form(pattern: re.Pattern[str], form: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            return f"is not a datetime {form}"
        text = value.replace("Z", "+00:00")
        if text[-5] in "+-" and text[-3] != ":":
            text = f"{text[:-2]}:{text[-2:]}"
        try:
            datetime.fromisoformat(text)
        except ValueError:
            return "is not a calendar datetime"
        return None

    return check


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else "is not an object"


def _list(value: Any) -> str | None:
    return None if isinstance(value, list) else "is not a list"


def _reference(value: Any) -> str | None:
    if not isinstance(value, dict):
        return 'is not a reference {"id", "refName"}'
    return None if not _id(value.get("id")) else "has no usable id"


def _string_values(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "is not an object"
    for key, item in value.items():
        if not isinstance(item, str):
            return f"value of {key!r} is not a string"
    return None


KINDS: dict[str, Callable[[Any], str | None]] = {
    "id": _id,
    "text": _text,
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
    "unix": _unix,
    "date": _date,
    "sf_datetime": _datetime_form(_SF_DATETIME, "like 2025-03-01T10:15:00.000+0000"),
    "iso_datetime": _datetime_form(_ISO_DATETIME, "ISO 8601 like 2025-02-01T00:05:00Z"),
    "object": _object,
    "list": _list,
    "reference": _reference,
    "metadata": _string_values,
}


@dataclass(frozen=True)
class Field:
    kind: str
    required: bool = False


def _fields(spec: str, kind: str, *, required: bool = False) -> dict[str, Field]:
    return {name: Field(kind, required) for name in spec.split()}


_SF_COMMON = {
    **_fields("IsDeleted", "boolean"),
    **_fields("SystemModstamp", "sf_datetime"),
}
_SF_STAMPS = _fields("CreatedDate LastModifiedDate", "sf_datetime")

_STRIPE_PRICE = {
    **_fields("id product currency type", "text"),
    **_fields("unit_amount", "integer"),
    **_fields("recurring", "object"),
    **_fields("recurring.interval recurring.usage_type", "text"),
    **_fields("recurring.interval_count", "integer"),
    **_fields("active livemode", "boolean"),
    **_fields("created", "unix"),
    **_fields("metadata", "metadata"),
}


def _nested(prefix: str, fields: Mapping[str, Field]) -> dict[str, Field]:
    return {f"{prefix}.{name}": field for name, field in fields.items()}


# (system, state file) → field path → what it must be. `a.b[]` walks each item of list `b`.
CONTRACT: dict[tuple[str, str], dict[str, Field]] = {
    ("crm", "Account"): {
        **_fields(
            "Name ParentId BillingStreet BillingCity BillingState BillingPostalCode "
            "BillingCountry CurrencyIsoCode Legal_Entity__c Tax_Jurisdiction__c "
            "Billing_Customer_Id__c",
            "text",
        ),
        **_SF_COMMON,
        **_SF_STAMPS,
    },
    ("crm", "Opportunity"): {
        **_fields(
            "AccountId Name StageName CurrencyIsoCode Type Billing_Subscription_Id__c", "text"
        ),
        **_fields("IsClosed IsWon", "boolean"),
        **_fields("CloseDate", "date"),
        **_fields("Amount Contract_Term_Months__c", "number"),
        **_SF_COMMON,
        **_SF_STAMPS,
    },
    ("crm", "OpportunityLineItem"): {
        **_fields("OpportunityId Product2Id ProductCode", "text"),
        **_fields("Quantity UnitPrice TotalPrice", "number"),
        **_SF_COMMON,
    },
    ("crm", "Product2"): {
        **_fields("ProductCode Name Family", "text"),
        **_fields("IsActive", "boolean"),
        **_SF_COMMON,
    },
    ("crm", "Contract"): {
        **_fields("AccountId Status Opportunity__c", "text"),
        **_fields("StartDate EndDate", "date"),
        **_fields("ContractTerm", "number"),
        **_SF_COMMON,
    },
    ("billing", "customers"): {
        **_fields("object name email currency tax_exempt", "text"),
        **_fields("created", "unix"),
        **_fields("livemode delinquent", "boolean"),
        **_fields("balance", "integer"),
        **_fields("address", "object"),
        **_fields("address.country address.city address.line1", "text"),
        **_fields("metadata", "metadata"),
    },
    ("billing", "products"): {
        **_fields("object name", "text"),
        **_fields("active livemode", "boolean"),
        **_fields("created updated", "unix"),
        **_fields("metadata", "metadata"),
    },
    ("billing", "prices"): {**_STRIPE_PRICE, **_fields("object", "text")},
    ("billing", "subscriptions"): {
        **_fields("object customer status currency", "text"),
        **_fields("created start_date canceled_at ended_at", "unix"),
        **_fields("cancel_at_period_end livemode", "boolean"),
        **_fields("metadata", "metadata"),
        **_fields("items", "object", required=True),
        **_fields("items.data", "list", required=True),
        **_fields("items.data[].id", "text"),
        **_fields("items.data[].quantity", "integer"),
        **_fields("items.data[].current_period_start items.data[].current_period_end", "unix"),
        **_fields("items.data[].price", "object"),
        **_nested("items.data[].price", _STRIPE_PRICE),
    },
    ("billing", "invoices"): {
        **_fields("object customer number status currency", "text"),
        **_fields("created period_start period_end", "unix"),
        **_fields(
            "subtotal total total_excluding_tax amount_due amount_paid amount_remaining",
            "integer",
        ),
        **_fields("total_taxes", "list"),
        **_fields("total_taxes[].amount", "integer"),
        **_fields("parent", "object"),
        **_fields("parent.subscription_details.subscription", "text"),
        **_fields("lines", "object", required=True),
        **_fields("lines.data", "list", required=True),
        **_fields("lines.data[].id lines.data[].currency lines.data[].description", "text"),
        **_fields("lines.data[].amount lines.data[].quantity", "integer"),
        **_fields("lines.data[].period.start lines.data[].period.end", "unix"),
        **_fields(
            "lines.data[].pricing.price_details.price lines.data[].pricing.price_details.product",
            "text",
        ),
        **_fields(
            "status_transitions.finalized_at status_transitions.paid_at "
            "status_transitions.voided_at",
            "unix",
        ),
        **_fields("livemode", "boolean"),
        **_fields("metadata", "metadata"),
    },
    ("billing", "invoice_payments"): {
        **_fields("object invoice currency status payment.payment_intent", "text"),
        **_fields("amount_paid amount_requested", "integer"),
        **_fields("is_default livemode", "boolean"),
        **_fields("created status_transitions.paid_at status_transitions.canceled_at", "unix"),
    },
    ("billing", "credit_notes"): {
        **_fields("object invoice customer currency status reason", "text"),
        **_fields("total", "integer"),
        **_fields("created", "unix"),
    },
    ("billing", "events"): {
        **_fields("object type api_version", "text"),
        **_fields("created", "unix"),
        **_fields("data", "object"),
        **_fields("data.object", "object"),
    },
    ("erp", "subsidiary"): {
        **_fields("name country custrecord_legal_entity_code", "text"),
        **_fields("currency", "reference"),
        **_fields("lastModifiedDate", "iso_datetime"),
    },
    ("erp", "customer"): {
        **_fields(
            "externalId entityId companyName email custentity_crm_account_id "
            "custentity_tax_jurisdiction",
            "text",
        ),
        **_fields("subsidiary currency", "reference"),
        **_fields("isInactive", "boolean"),
        **_fields("dateCreated lastModifiedDate", "iso_datetime"),
    },
    ("erp", "item"): {
        **_fields("itemId displayName externalId", "text"),
        **_fields("isInactive", "boolean"),
        **_fields("lastModifiedDate", "iso_datetime"),
    },
    ("erp", "invoice"): {
        **_fields("externalId tranId custbody_billing_subscription_id", "text"),
        **_fields("tranDate", "date"),
        **_fields("entity subsidiary currency status", "reference"),
        **_fields("subtotal taxTotal total amountRemaining", "number"),
        **_fields("item", "object"),
        **_fields("item.items", "list"),
        **_fields("item.items[].item", "reference"),
        **_fields("item.items[].quantity item.items[].rate item.items[].amount", "number"),
        **_fields("item.items[].description", "text"),
        **_fields("dateCreated lastModifiedDate", "iso_datetime"),
    },
    ("erp", "customerpayment"): {
        **_fields("externalId tranId", "text"),
        **_fields("tranDate", "date"),
        **_fields("customer currency", "reference"),
        **_fields("payment applied unapplied", "number"),
        **_fields("apply", "object"),
        **_fields("apply.items", "list"),
        **_fields("apply.items[].doc", "reference"),
        **_fields("apply.items[].amount", "number"),
        **_fields("apply.items[].apply", "boolean"),
        **_fields("dateCreated lastModifiedDate", "iso_datetime"),
    },
    ("erp", "currencyrate"): {
        **_fields("baseCurrency transactionCurrency", "reference"),
        **_fields("exchangeRate", "number"),
        **_fields("effectiveDate", "date"),
    },
    ("erp", "creditmemo"): {
        **_fields("externalId tranId", "text"),
        **_fields("tranDate", "date"),
        **_fields("entity currency createdFrom", "reference"),
        **_fields("total", "number"),
        **_fields("dateCreated lastModifiedDate", "iso_datetime"),
    },
}


@dataclass
class _Node:
    """One key of a record in the checking tree: its own check and the keys below it."""

    check: Callable[[Any], str | None] | None = None
    required: bool = False
    each: bool = False  # the value is a list; `children` apply to each item
    children: dict[str, _Node] = field(default_factory=dict)


def _tree(fields: Mapping[str, Field]) -> dict[str, _Node]:
    root: dict[str, _Node] = {}
    for path, spec in fields.items():
        level = root
        parts = path.split(".")
        for position, part in enumerate(parts):
            name = part.removesuffix("[]")
            node = level.setdefault(name, _Node())
            node.each = node.each or part.endswith("[]")
            node.required = node.required or spec.required
            if position == len(parts) - 1:
                node.check = KINDS[spec.kind]
            level = node.children
    return root


_TREES = {key: _tree(fields) for key, fields in CONTRACT.items()}


def _check_object(value: dict[str, Any], tree: dict[str, _Node], trail: str) -> None:
    for name, node in tree.items():
        child = value.get(name)
        if child is None:
            if node.required:
                raise ContractError(trail + name, "is required")
            continue
        if node.check is not None:
            reason = node.check(child)
            if reason:
                raise ContractError(trail + name, f"{_shown(child)} {reason}")
        if not node.children:
            continue
        if node.each:
            if not isinstance(child, list):
                raise ContractError(trail + name, f"{_shown(child)} is not a list")
            for position, item in enumerate(child):
                _check_child(item, node.children, f"{trail}{name}[{position}]")
        else:
            _check_child(child, node.children, trail + name)


def _check_child(value: Any, tree: dict[str, _Node], here: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise ContractError(here, f"{_shown(value)} is not an object")
    _check_object(value, tree, here + ".")


def check_record(system: str, name: str, record: Mapping[str, Any], *, id_field: str) -> None:
    """Raises ContractError naming the first field of `record` that breaks the contract."""
    key = record.get(id_field)
    if key is None:
        raise ContractError(id_field, "is required")
    reason = _id(key)
    if reason:
        raise ContractError(id_field, f"{_shown(key)} {reason}")
    tree = _TREES.get((system, name))
    if tree:
        _check_object(record, tree, "")


def depth_within(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and objects nest at most `limit` deep (without recursion)."""
    stack = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            current = current.values()
        elif not isinstance(current, list):
            continue
        if depth > limit:
            return False
        stack.extend((item, depth + 1) for item in current if isinstance(item, dict | list))
    return True
