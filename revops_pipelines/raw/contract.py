"""What every field the staging models read must look like, per raw stream.

A record that breaks this is quarantined instead of stored, so no cast in staging can
fail on a value raw let through, and no value is quietly changed on the way (a Stripe
amount of 531.65 is not "532 minor units", it is a broken record). Null or absent is
accepted for every field the real APIs may leave out; only the primary key and the lists
staging unnests (`items`, `lines`) must be there. Unknown fields are not checked.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

_BIGINT = 2**63
# to_minor multiplies major units by up to 10^4 into a BIGINT; DECIMAL(18, 4) holds < 10^14.
_MAJOR_UNITS_BOUND = 10**13
_UNIX_MAX = 253402300799  # 9999-12-31T23:59:59Z

_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)
_DIGITS = re.compile(r"-?[0-9]+", re.ASCII)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_DATETIME = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[T ](?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,9}))?(?P<offset>Z|[+-][0-9]{2}(?::?[0-9]{2})?)?",
    re.ASCII,
)


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else "not a string"


def _integer(value: Any) -> str | None:
    """Stripe money and counts: a JSON integer, never a float (nothing is rounded)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return "not an integer"
    return None if -_BIGINT < value < _BIGINT else "out of range"


def _count(value: Any) -> str | None:
    """SuiteQL numbers arrive as JSON numbers or as their text."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    return _integer(value)


def _unix(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _UNIX_MAX:
        return "not Unix seconds"
    return None


def _decimal(value: Any, *, text_allowed: bool) -> str | None:
    if isinstance(value, str) and text_allowed and _DECIMAL_TEXT.fullmatch(value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "not a number"
    if not math.isfinite(value) or abs(value) >= _MAJOR_UNITS_BOUND:
        return "out of range"
    return None


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "not true or false"


def _flag(value: Any) -> str | None:
    """NetSuite check boxes read through SuiteQL: `T` or `F`."""
    return None if isinstance(value, bool) or value in ("T", "F") else "not T or F"


def _date(value: Any) -> str | None:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        return "not a date YYYY-MM-DD"
    try:
        date.fromisoformat(value)
    except ValueError:
        return "not a calendar date"
    return None


def _datetime(value: Any) -> str | None:
    match = _DATETIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return "not an ISO 8601 datetime"
    try:
        datetime.fromisoformat(f"{match['date']}T{match['time']}")
    except ValueError:
        return "not a calendar datetime"
    return None


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else "not an object"


def _list(value: Any) -> str | None:
    return None if isinstance(value, list) else "not a list"


KINDS: dict[str, Callable[[Any], str | None]] = {
    "text": _text,
    "integer": _integer,
    "count": _count,
    "unix": _unix,
    # Salesforce sends money as JSON numbers; SuiteQL may send it as text.
    "number": lambda value: _decimal(value, text_allowed=False),
    "decimal": lambda value: _decimal(value, text_allowed=True),
    "boolean": _boolean,
    "flag": _flag,
    "date": _date,
    "datetime": _datetime,
    "object": _object,
    "list": _list,
}


def _kind(kind: str, names: str, *, required: bool = False) -> dict[str, tuple[str, bool]]:
    return {name: (kind, required) for name in names.split()}


_SF_COMMON = {**_kind("boolean", "IsDeleted"), **_kind("datetime", "SystemModstamp")}
_SF_STAMPS = _kind("datetime", "CreatedDate LastModifiedDate")
_ERP_TRANSACTION = {
    **_kind(
        "text",
        "type tranid entity subsidiary currency externalid status custbody_billing_subscription_id",
    ),
    **_kind("date", "trandate"),
    **_kind("decimal", "foreigntotal foreigntaxtotal foreignamountremaining"),
    **_kind("datetime", "datecreated lastmodifieddate"),
}

# Raw stream key → field path → (kind, required). `a[].b` checks `b` in every item of list `a`.
FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "crm_account": {
        **_kind(
            "text",
            "Name ParentId BillingCountry CurrencyIsoCode Legal_Entity__c Tax_Jurisdiction__c "
            "Billing_Customer_Id__c",
        ),
        **_SF_COMMON,
        **_SF_STAMPS,
    },
    "crm_opportunity": {
        **_kind("text", "AccountId Name StageName CurrencyIsoCode Type Billing_Subscription_Id__c"),
        **_kind("boolean", "IsClosed IsWon"),
        **_kind("date", "CloseDate"),
        **_kind("number", "Amount Contract_Term_Months__c"),
        **_SF_COMMON,
        **_SF_STAMPS,
    },
    "crm_opportunity_line_item": {
        **_kind("text", "OpportunityId Product2Id ProductCode"),
        **_kind("number", "Quantity UnitPrice TotalPrice"),
        **_SF_COMMON,
    },
    "crm_product": {
        **_kind("text", "ProductCode Name Family"),
        **_kind("boolean", "IsActive"),
        **_SF_COMMON,
    },
    "crm_contract": {
        **_kind("text", "AccountId Opportunity__c Status"),
        **_kind("date", "StartDate EndDate"),
        **_kind("number", "ContractTerm"),
        **_SF_COMMON,
    },
    "billing_customer": {
        **_kind("text", "name email currency"),
        **_kind("object", "address metadata"),
        **_kind(
            "text",
            "address.country metadata.crm_account_id metadata.legal_entity "
            "metadata.tax_jurisdiction",
        ),
        **_kind("unix", "created"),
        **_kind("boolean", "deleted"),
    },
    "billing_product": {
        **_kind("text", "name metadata.sku"),
        **_kind("object", "metadata"),
        **_kind("boolean", "active deleted"),
        **_kind("unix", "created updated"),
    },
    "billing_price": {
        **_kind("text", "product currency type recurring.interval"),
        **_kind("object", "recurring"),
        **_kind("integer", "unit_amount recurring.interval_count"),
        **_kind("boolean", "active"),
        **_kind("unix", "created"),
    },
    "billing_subscription": {
        **_kind("text", "customer status currency metadata.crm_opportunity_id"),
        **_kind("object", "metadata"),
        **_kind("unix", "created start_date canceled_at ended_at"),
        **_kind("boolean", "cancel_at_period_end"),
        **_kind("object", "items", required=True),
        **_kind("list", "items.data", required=True),
        **_kind(
            "text",
            "items.data[].id items.data[].price.id items.data[].price.product "
            "items.data[].price.currency items.data[].price.recurring.interval",
        ),
        **_kind(
            "integer",
            "items.data[].quantity items.data[].price.unit_amount "
            "items.data[].price.recurring.interval_count",
        ),
        **_kind("unix", "items.data[].current_period_start items.data[].current_period_end"),
    },
    "billing_invoice": {
        **_kind(
            "text",
            "customer number status currency subscription parent.subscription_details.subscription",
        ),
        **_kind("unix", "created period_start period_end"),
        **_kind("integer", "subtotal total amount_due amount_paid amount_remaining"),
        **_kind("list", "total_taxes"),
        **_kind("integer", "total_taxes[].amount"),
        **_kind(
            "unix",
            "status_transitions.finalized_at status_transitions.paid_at "
            "status_transitions.voided_at",
        ),
        **_kind("object", "lines", required=True),
        **_kind("list", "lines.data", required=True),
        **_kind(
            "text",
            "lines.data[].id lines.data[].currency lines.data[].description "
            "lines.data[].pricing.price_details.price lines.data[].pricing.price_details.product",
        ),
        **_kind("integer", "lines.data[].amount lines.data[].quantity"),
        **_kind("unix", "lines.data[].period.start lines.data[].period.end"),
    },
    "billing_invoice_payment": {
        **_kind("text", "invoice currency status payment.payment_intent"),
        **_kind("integer", "amount_paid amount_requested"),
        **_kind("boolean", "is_default"),
        **_kind("unix", "created status_transitions.paid_at status_transitions.canceled_at"),
    },
    "billing_credit_note": {
        **_kind("text", "invoice customer currency status reason"),
        **_kind("integer", "total"),
        **_kind("unix", "created"),
    },
    "erp_subsidiary": {
        **_kind("text", "name country currency custrecord_legal_entity_code"),
        **_kind("datetime", "lastmodifieddate"),
    },
    "erp_currency": _kind("text", "symbol name"),
    "erp_currency_rate": {
        **_kind("text", "basecurrency transactioncurrency"),
        **_kind("decimal", "exchangerate"),
        **_kind("date", "effectivedate"),
    },
    "erp_customer": {
        **_kind(
            "text",
            "externalid entityid companyname email subsidiary currency "
            "custentity_crm_account_id custentity_tax_jurisdiction",
        ),
        **_kind("flag", "isinactive"),
        **_kind("datetime", "datecreated lastmodifieddate"),
    },
    "erp_item": {
        **_kind("text", "itemid displayname externalid"),
        **_kind("flag", "isinactive"),
        **_kind("datetime", "lastmodifieddate"),
    },
    "erp_invoice": _ERP_TRANSACTION,
    "erp_customer_payment": _ERP_TRANSACTION,
    "erp_credit_memo": _ERP_TRANSACTION,
    "erp_transaction_line": {
        **_kind("text", "transaction item memo"),
        **_kind("count", "linesequencenumber"),
        **_kind("decimal", "quantity rate foreignamount"),
    },
    "erp_previous_transaction_link": {
        **_kind("text", "previousdoc nextdoc linktype"),
        **_kind("decimal", "foreignamount"),
    },
}


@dataclass(frozen=True)
class Breach:
    """The first field of a record that breaks the contract, and why."""

    field: str
    value: Any
    reason: str

    def value_text(self) -> str | None:
        return None if self.value is None else json.dumps(self.value, ensure_ascii=False)[:500]


@dataclass
class _Key:
    check: Callable[[Any], str | None] | None = None
    required: bool = False
    each: bool = False
    below: dict[str, _Key] = field(default_factory=dict)


def _compile(paths: Mapping[str, tuple[str, bool]]) -> dict[str, _Key]:
    root: dict[str, _Key] = {}
    for path, (kind, required) in paths.items():
        level = root
        parts = path.split(".")
        for position, part in enumerate(parts):
            key = level.setdefault(part.removesuffix("[]"), _Key())
            key.each |= part.endswith("[]")
            key.required |= required
            if position == len(parts) - 1:
                key.check = KINDS[kind]
            level = key.below
    return root


_COMPILED = {stream: _compile(paths) for stream, paths in FIELDS.items()}


def find_breach(stream: str, record: Mapping[str, Any], *, deleted: bool = False) -> Breach | None:
    """The first breaking field of `record` in `stream`; a tombstone needs no required field."""
    keys = _COMPILED.get(stream)
    return _breach(record, keys, "", required=not deleted) if keys else None


def _breach(
    value: Mapping[str, Any], keys: dict[str, _Key], at: str, *, required: bool
) -> Breach | None:
    for name, key in keys.items():
        child = value.get(name)
        path = at + name
        if child is None:
            if key.required and required:
                return Breach(path, None, "required")
            continue
        reason = key.check(child) if key.check is not None else None
        if reason:
            return Breach(path, child, reason)
        if not key.below:
            continue
        if key.each:
            if not isinstance(child, list):
                return Breach(path, child, "not a list")
            members = [(f"{path}[{position}]", item) for position, item in enumerate(child)]
        else:
            members = [(path, child)]
        for label, item in members:
            if item is None:
                continue
            if not isinstance(item, dict):
                return Breach(label, item, "not an object")
            found = _breach(item, key.below, label + ".", required=required)
            if found:
                return found
    return None
