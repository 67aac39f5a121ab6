"""Stripe-style cursor pagination over one collection, fast enough for 100k records.

Records are ordered newest first by (created, id); the order is computed once per
collection version and kept ascending so `bisect` finds cursors and `created` bounds.
A record is served as the JSON text it had in the state file, or, once written through
the API, encoded once and reused by every page that holds it.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from revops_pipelines.sandbox.state import Collection

Predicate = Callable[[dict[str, Any]], bool]
Getter = Callable[[dict[str, Any]], Any]


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def _created(record: dict[str, Any]) -> int:
    value = record.get("created")
    return value if isinstance(value, int) else 0


@dataclass
class OrderedView:
    """One collection sorted ascending by (created, id); index lists are positions in it."""

    version: int
    records: list[dict[str, Any]]
    ids: list[str]
    created: list[int]
    positions: dict[str, int]
    _encoded: list[bytes | None] = field(default_factory=list)
    _groups: dict[str, dict[Any, list[int]]] = field(default_factory=dict)

    nested: str | None = None

    @classmethod
    def build(cls, collection: Collection, *, nested: str | None = None) -> OrderedView:
        """`nested`: the field holding an embedded list, served cut to its first page."""
        id_field = collection.id_field
        keyed = sorted(
            ((_created(r), str(r[id_field]), r) for r in collection.records),
            key=lambda item: (item[0], item[1]),
        )
        ids = [item[1] for item in keyed]
        records = [item[2] for item in keyed]
        raw = collection.raw
        return cls(
            version=collection.version,
            records=records,
            ids=ids,
            created=[item[0] for item in keyed],
            positions={record_id: i for i, record_id in enumerate(ids)},
            # A record still as loaded, and served whole, is served as the file's own JSON text.
            _encoded=[
                raw.get(record_id) if embedded(record, nested) is record else None
                for record_id, record in zip(ids, records, strict=True)
            ],
            nested=nested,
        )

    def encoded(self, position: int) -> bytes:
        cached = self._encoded[position]
        if cached is None:
            record = embedded(self.records[position], self.nested)
            cached = self._encoded[position] = encode(record)
        return cached

    def group(self, name: str, getter: Getter, value: Any) -> list[int]:
        """Positions whose `getter` value equals `value`, ascending; built once per field."""
        groups = self._groups.get(name)
        if groups is None:
            groups = {}
            for position, record in enumerate(self.records):
                key = getter(record)
                if not isinstance(key, (dict, list)):  # an expanded object matches no id
                    groups.setdefault(key, []).append(position)
            self._groups[name] = groups
        return groups.get(value, [])


EMBEDDED_LIMIT = 10


def embedded(record: dict[str, Any], nested: str | None) -> dict[str, Any]:
    """The record as Stripe serves it: an embedded list holds its first 10 entries and says
    `has_more`; the rest are read from the list's `url`. The record itself when nothing is cut.
    """
    listed = record.get(nested) if nested else None
    data = listed.get("data") if isinstance(listed, dict) else None
    if not isinstance(data, list) or len(data) <= EMBEDDED_LIMIT:
        return record
    return {**record, nested: {**listed, "data": data[:EMBEDDED_LIMIT], "has_more": True}}


def page_sequence(
    items: list[dict[str, Any]],
    *,
    limit: int,
    starting_after: str | None = None,
    ending_before: str | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """One page of a nested list, which keeps its own order (not newest first)."""
    ids = [str(item.get("id")) for item in items]
    if starting_after is not None:
        if starting_after not in ids:
            raise UnknownCursor("starting_after", starting_after)
        rest = items[ids.index(starting_after) + 1 :]
        return rest[:limit], len(rest) > limit
    if ending_before is not None:
        if ending_before not in ids:
            raise UnknownCursor("ending_before", ending_before)
        before = items[: ids.index(ending_before)]
        return before[-limit:], len(before) > limit
    return items[:limit], len(items) > limit


@dataclass(frozen=True)
class PageRequest:
    limit: int = 10
    starting_after: str | None = None
    ending_before: str | None = None
    created_gte: int | None = None
    created_lte: int | None = None
    # Equality filters served from a per-field index: (name, getter, value).
    indexed: tuple[tuple[str, Getter, Any], ...] = ()
    predicates: tuple[Predicate, ...] = ()


class UnknownCursor(LookupError):
    def __init__(self, param: str, record_id: str) -> None:
        self.param = param
        self.record_id = record_id
        super().__init__(f"{param} {record_id!r} is not in the list")


def page(view: OrderedView, request: PageRequest) -> tuple[list[int], bool]:
    """Positions of one page, newest first, and whether more exist in the paging direction."""
    candidates: Sequence[int] = range(len(view.records))
    predicates = list(request.predicates)
    if request.indexed:
        lists = [view.group(name, getter, value) for name, getter, value in request.indexed]
        candidates = min(lists, key=len)
        for (_, getter, value), positions in zip(request.indexed, lists, strict=True):
            if positions is not candidates:
                predicates.append(lambda r, g=getter, v=value: g(r) == v)

    created = view.created
    low, high = 0, len(candidates)
    if request.created_gte is not None:
        low = bisect_left(candidates, request.created_gte, key=created.__getitem__)
    if request.created_lte is not None:
        high = bisect_right(candidates, request.created_lte, key=created.__getitem__)
    if request.starting_after is not None:
        cursor = _position(view, "starting_after", request.starting_after)
        high = min(high, bisect_left(candidates, cursor))
    backwards = request.ending_before is not None and request.starting_after is None
    if backwards:
        cursor = _position(view, "ending_before", request.ending_before)  # type: ignore[arg-type]
        low = max(low, bisect_right(candidates, cursor))

    records = view.records
    wanted = request.limit + 1
    found: list[int] = []
    steps = range(low, high) if backwards else range(high - 1, low - 1, -1)
    if not predicates:
        found = [candidates[i] for i in steps[:wanted]]
    else:
        for i in steps:
            position = candidates[i]
            record = records[position]
            if all(check(record) for check in predicates):
                found.append(position)
                if len(found) == wanted:
                    break
    has_more = len(found) > request.limit
    found = found[: request.limit]
    if backwards:
        found.reverse()
    return found, has_more


def _position(view: OrderedView, param: str, record_id: str) -> int:
    position = view.positions.get(record_id)
    if position is None:
        raise UnknownCursor(param, record_id)
    return position


def list_body(view: OrderedView, positions: list[int], *, url: str, has_more: bool) -> bytes:
    return encoded_list([view.encoded(p) for p in positions], url=url, has_more=has_more)


def encoded_list(records: list[bytes], *, url: str, has_more: bool) -> bytes:
    data = b",".join(records)
    return (
        b'{"object":"list","data":['
        + data
        + b'],"has_more":'
        + (b"true" if has_more else b"false")
        + b',"url":'
        + json.dumps(url).encode()
        + b"}"
    )
