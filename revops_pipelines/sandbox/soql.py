"""The SOQL subset the sandbox CRM answers: parse, resolve against the records, evaluate.

Only what the connectors need is accepted; everything else is refused with Salesforce's
error code (`MALFORMED_QUERY`, `INVALID_TYPE`, `INVALID_FIELD`), because a sandbox that
quietly ignored an `OR` or a relationship field would hand a client a partial answer
that the real system never would.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

# Fields SOURCES.md promises per object; a field may be queried even if no record has it yet.
CONTRACT_FIELDS: dict[str, tuple[str, ...]] = {
    "Account": (
        "Id",
        "Name",
        "ParentId",
        "BillingStreet",
        "BillingCity",
        "BillingState",
        "BillingPostalCode",
        "BillingCountry",
        "CurrencyIsoCode",
        "Legal_Entity__c",
        "Tax_Jurisdiction__c",
        "Billing_Customer_Id__c",
        "IsDeleted",
        "CreatedDate",
        "LastModifiedDate",
        "SystemModstamp",
    ),
    "Opportunity": (
        "Id",
        "AccountId",
        "Name",
        "StageName",
        "IsClosed",
        "IsWon",
        "CloseDate",
        "Amount",
        "CurrencyIsoCode",
        "Type",
        "Contract_Term_Months__c",
        "Billing_Subscription_Id__c",
        "IsDeleted",
        "CreatedDate",
        "LastModifiedDate",
        "SystemModstamp",
    ),
    "OpportunityLineItem": (
        "Id",
        "OpportunityId",
        "Product2Id",
        "ProductCode",
        "Quantity",
        "UnitPrice",
        "TotalPrice",
        "SystemModstamp",
        "IsDeleted",
    ),
    "Product2": ("Id", "ProductCode", "Name", "Family", "IsActive", "SystemModstamp", "IsDeleted"),
    "Contract": (
        "Id",
        "AccountId",
        "StartDate",
        "EndDate",
        "ContractTerm",
        "Status",
        "Opportunity__c",
        "SystemModstamp",
        "IsDeleted",
    ),
}

# Fields of type dateTime and date: compared only with unquoted literals of their type.
TEMPORAL_FIELDS: dict[str, str] = {
    **dict.fromkeys(("CreatedDate", "LastModifiedDate", "SystemModstamp"), "datetime"),
    **dict.fromkeys(("CloseDate", "StartDate", "EndDate"), "date"),
}
_TYPE_NAMES = {"datetime": "dateTime", "date": "date"}

OPERATORS = ("=", "!=", "<", "<=", ">", ">=")


class SoqlError(Exception):
    """A query the sandbox refuses; `error_code` is Salesforce's code for it."""

    def __init__(self, error_code: str, message: str) -> None:
        self.error_code = error_code
        self.message = message
        super().__init__(f"{error_code}: {message}")


def _malformed(message: str) -> SoqlError:
    return SoqlError("MALFORMED_QUERY", message)


@dataclass(frozen=True)
class Literal:
    kind: str  # datetime, date, string, number, boolean, null
    value: Any


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str  # one of OPERATORS, or "IN"
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class OrderItem:
    field: str
    descending: bool = False
    nulls_last: bool = False


@dataclass(frozen=True)
class SoqlQuery:
    fields: tuple[str, ...]
    object_name: str
    conditions: tuple[Condition, ...] = ()
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\w:.]))
  | (?P<number>-?\d+(?:\.\d+)?(?![\w.]))
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
    """,
    re.VERBOSE | re.ASCII,
)

_KEYWORDS = frozenset(
    {
        *("select", "from", "where", "and", "or", "not", "in", "order", "by"),
        *("asc", "desc", "nulls", "first", "last", "limit", "true", "false", "null"),
    }
)
_STRING_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'"}
_STRING_ESCAPES["\\"] = "\\"


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise _malformed(f"unexpected character {text[position]!r} at position {position}")
        position = match.end()
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, match.group()))
    return tokens


def _unquote(text: str) -> str:
    body = text[1:-1]
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\":
            escaped = body[index + 1]
            if escaped not in _STRING_ESCAPES:
                raise _malformed(f"invalid escape sequence \\{escaped} in {text}")
            out.append(_STRING_ESCAPES[escaped])
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def next(self, what: str) -> _Token:
        token = self.peek()
        if token is None:
            raise _malformed(f"unexpected end of query, expecting {what}")
        self.position += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "name" and token.text.lower() in words

    def keyword(self, word: str) -> None:
        token = self.next(word.upper())
        if token.kind != "name" or token.text.lower() != word:
            raise _malformed(f"unexpected token {token.text!r}, expecting {word.upper()}")

    def punct(self, char: str) -> None:
        token = self.next(repr(char))
        if token.text != char:
            raise _malformed(f"unexpected token {token.text!r}, expecting {char!r}")

    def field(self) -> str:
        token = self.next("a field name")
        if token.kind != "name" or token.text.lower() in _KEYWORDS:
            raise _malformed(f"unexpected token {token.text!r}, expecting a field name")
        if "." in token.text:
            raise _malformed(f"relationship fields are not supported: {token.text}")
        after = self.peek()
        if after is not None and after.text == "(":
            raise _malformed(f"functions are not supported: {token.text}()")
        return token.text

    def literal(self) -> Literal:
        token = self.next("a value")
        if token.kind == "datetime":
            try:
                moment = datetime.fromisoformat(token.text.replace("Z", "+00:00"))
            except ValueError:
                raise _malformed(f"invalid datetime literal {token.text}") from None
            return Literal("datetime", moment)
        if token.kind == "date":
            try:
                return Literal("date", date.fromisoformat(token.text))
            except ValueError:
                raise _malformed(f"invalid date literal {token.text}") from None
        if token.kind == "number":
            number = float(token.text) if "." in token.text else int(token.text)
            return Literal("number", number)
        if token.kind == "string":
            return Literal("string", _unquote(token.text))
        if token.kind == "name" and token.text.lower() in ("true", "false"):
            return Literal("boolean", token.text.lower() == "true")
        if token.kind == "name" and token.text.lower() == "null":
            return Literal("null", None)
        raise _malformed(f"unexpected token {token.text!r}, expecting a literal value")

    def condition(self) -> Condition:
        if self.at_keyword("not"):
            raise _malformed("NOT is not supported")
        token = self.peek()
        if token is not None and token.text == "(":
            raise _malformed("parenthesized conditions are not supported")
        field = self.field()
        if self.at_keyword("in"):
            self.position += 1
            self.punct("(")
            if self.at_keyword("select"):
                raise _malformed("subqueries are not supported")
            values = [self.literal()]
            while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                self.position += 1
                values.append(self.literal())
            self.punct(")")
            if any(value.kind == "null" for value in values):
                raise _malformed("null is not allowed in an IN list")
            return Condition(field, "IN", tuple(values))
        token = self.next("an operator")
        if token.kind != "op":
            raise _malformed(f"unexpected token {token.text!r}, expecting an operator")
        operator = "!=" if token.text == "<>" else token.text
        value = self.literal()
        if value.kind == "null" and operator not in ("=", "!="):
            raise _malformed(f"null can only be compared with = or !=, not {operator}")
        return Condition(field, operator, (value,))

    def order_item(self) -> OrderItem:
        field = self.field()
        descending = False
        if self.at_keyword("asc", "desc"):
            descending = self.next("ASC").text.lower() == "desc"
        nulls_last = descending
        if self.at_keyword("nulls"):
            self.position += 1
            if not self.at_keyword("first", "last"):
                raise _malformed("NULLS must be followed by FIRST or LAST")
            nulls_last = self.next("FIRST").text.lower() == "last"
        return OrderItem(field, descending, nulls_last)

    def query(self) -> SoqlQuery:
        self.keyword("select")
        fields = [self.field()]
        while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
            self.position += 1
            if self.peek() is not None and self.peek().text == "(":  # type: ignore[union-attr]
                raise _malformed("subqueries are not supported")
            fields.append(self.field())
        self.keyword("from")
        object_token = self.next("an object name")
        if object_token.kind != "name" or "." in object_token.text:
            raise _malformed(f"unexpected token {object_token.text!r}, expecting an object name")
        conditions: list[Condition] = []
        if self.at_keyword("where"):
            self.position += 1
            conditions.append(self.condition())
            while self.at_keyword("and", "or"):
                if self.next("AND").text.lower() == "or":
                    raise _malformed("OR is not supported")
                conditions.append(self.condition())
        order_by: list[OrderItem] = []
        if self.at_keyword("order"):
            self.position += 1
            self.keyword("by")
            order_by.append(self.order_item())
            while self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                self.position += 1
                order_by.append(self.order_item())
        limit = None
        if self.at_keyword("limit"):
            self.position += 1
            token = self.next("a number")
            if token.kind != "number" or not token.text.isdigit():
                raise _malformed(f"LIMIT needs a non-negative integer, not {token.text!r}")
            limit = int(token.text)
        leftover = self.peek()
        if leftover is not None:
            raise _malformed(f"unexpected token {leftover.text!r}")
        lowered = [field.lower() for field in fields]
        duplicates = sorted({f for f in fields if lowered.count(f.lower()) > 1})
        if duplicates:
            raise _malformed(f"duplicate field selected: {duplicates[0]}")
        return SoqlQuery(
            fields=tuple(fields),
            object_name=object_token.text,
            conditions=tuple(conditions),
            order_by=tuple(order_by),
            limit=limit,
        )


def parse_soql(text: str) -> SoqlQuery:
    """Parse one query of the subset; raises SoqlError(MALFORMED_QUERY) for anything else."""
    tokens = _tokenize(text)
    if not tokens:
        raise _malformed("empty query")
    return _Parser(tokens).query()


@dataclass(frozen=True)
class ObjectCatalog:
    """One object's API name and its fields, looked up case-insensitively."""

    name: str
    fields: Mapping[str, str]  # lowercase → API casing

    def resolve(self, field: str) -> str:
        try:
            return self.fields[field.lower()]
        except KeyError:
            raise SoqlError(
                "INVALID_FIELD", f"No such column '{field}' on entity '{self.name}'"
            ) from None


def build_catalog(name: str, records: Iterable[Mapping[str, Any]]) -> ObjectCatalog:
    """The fields of an object: the contract's list plus every key any record carries."""
    fields: dict[str, str] = {f.lower(): f for f in CONTRACT_FIELDS.get(name, ("Id",))}
    seen: set[str] = set()
    for record in records:
        for key in record:
            if key not in seen:
                seen.add(key)
                if key != "attributes":
                    fields.setdefault(key.lower(), key)
    return ObjectCatalog(name=name, fields=fields)


def resolve_object(name: str, objects: Iterable[str]) -> str:
    """The object's API name, or INVALID_TYPE as Salesforce words it."""
    for candidate in objects:
        if candidate.lower() == name.lower():
            return candidate
    raise SoqlError(
        "INVALID_TYPE",
        f"sObject type '{name}' is not supported. If you are attempting to use a custom "
        "object, be sure to append the '__c' after the entity name.",
    )


def parse_sf_datetime(value: str) -> datetime:
    """Salesforce writes `2025-03-01T10:15:00.000+0000`; Python wants the colon in the offset."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"datetime without an offset: {value}")
    return moment


def _coerce(value: Any, literal: Literal, *, field: str, record_id: str) -> Any:
    """The record's value in the literal's type, so datetimes compare as datetimes."""
    kind = literal.kind
    try:
        if kind == "datetime" and isinstance(value, str):
            return parse_sf_datetime(value)
        if kind == "date" and isinstance(value, str):
            return date.fromisoformat(value)
        if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if kind == "string" and isinstance(value, str):
            return value
        if kind == "boolean" and isinstance(value, bool):
            return value
    except ValueError:
        pass
    raise SoqlError(
        "INVALID_QUERY_FILTER_OPERATOR",
        f"value of filter criterion for field '{field}' must be of the field's type "
        f"(record {record_id} holds {value!r}, the query compares with a {kind})",
    )


def _compare(left: Any, operator: str, right: Any) -> bool:
    if operator == "<":
        return left < right
    if operator == "<=":
        return left <= right
    if operator == ">":
        return left > right
    return left >= right


def _matches(record: Mapping[str, Any], condition: Condition, *, field: str) -> bool:
    value = record.get(field)
    record_id = str(record.get("Id"))
    if condition.operator == "IN":
        if value is None:
            return False
        return any(
            _equal(_coerce(value, literal, field=field, record_id=record_id), literal.value)
            for literal in condition.values
        )
    (literal,) = condition.values
    if literal.kind == "null":
        return (value is None) == (condition.operator == "=")
    if value is None:
        # Salesforce: a null field satisfies only `!= value`.
        return condition.operator == "!="
    left = _coerce(value, literal, field=field, record_id=record_id)
    if condition.operator in ("=", "!="):
        return _equal(left, literal.value) == (condition.operator == "=")
    return _compare(left, condition.operator, literal.value)


def _equal(left: Any, right: Any) -> bool:
    # Text equality in SOQL is case-insensitive.
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    return left == right


_SF_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$")


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        if _SF_DATETIME.match(value):
            return (2, parse_sf_datetime(value).timestamp())
        return (3, value.casefold())
    return (4, str(value))


def _sort(rows: list[Mapping[str, Any]], item: OrderItem, *, field: str) -> list[Mapping[str, Any]]:
    present = [row for row in rows if row.get(field) is not None]
    missing = [row for row in rows if row.get(field) is None]
    try:
        present.sort(key=lambda row: _sort_key(row[field]), reverse=item.descending)
    except TypeError:
        raise SoqlError(
            "MALFORMED_QUERY", f"field '{field}' holds values that do not sort"
        ) from None
    return present + missing if item.nulls_last else missing + present


def _check_literal_types(condition: Condition, *, field: str) -> None:
    """A dateTime or date field is compared with an unquoted literal of its type, or null."""
    wanted = TEMPORAL_FIELDS.get(field)
    if wanted is None:
        return
    for literal in condition.values:
        if literal.kind not in (wanted, "null"):
            raise SoqlError(
                "INVALID_FIELD",
                f"value of filter criterion for field '{field}' must be of type "
                f"{_TYPE_NAMES[wanted]} and should not be enclosed in quotes",
            )


def run_soql(
    query: SoqlQuery,
    records: Sequence[Mapping[str, Any]],
    *,
    catalog: ObjectCatalog,
    include_deleted: bool,
) -> list[dict[str, Any]]:
    """Filter, order and project the records; every field is resolved before any row is read."""
    fields = [catalog.resolve(field) for field in query.fields]
    conditions = [(condition, catalog.resolve(condition.field)) for condition in query.conditions]
    for condition, field in conditions:
        _check_literal_types(condition, field=field)
    order = [(item, catalog.resolve(item.field)) for item in query.order_by]
    rows = [
        record
        for record in records
        if (include_deleted or record.get("IsDeleted") is not True)
        and all(_matches(record, condition, field=field) for condition, field in conditions)
    ]
    # Without ORDER BY the order is by Id, so paging is deterministic; ORDER BY sorts are
    # applied last-key-first on top of it, relying on the sort being stable.
    rows.sort(key=lambda record: str(record.get("Id")))
    for item, field in reversed(order):
        rows = _sort(rows, item, field=field)
    if query.limit is not None:
        rows = rows[: query.limit]
    return [{field: row.get(field) for field in fields} for row in rows]
