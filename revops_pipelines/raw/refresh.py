"""Fetch-on-notify: which raw streams a batch of landed events touches, and what to fetch.

An event says what changed; the system says what it is now. So a late, repeated or
out-of-order event can only make the reader fetch the current state once more.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from revops_pipelines.connectors.base import StreamSpec
from revops_pipelines.landing_zone.notices import Notice
from revops_pipelines.raw.extract import STREAM_TABLES, stream_key


def _names(system: str, spec: StreamSpec, notice: Notice) -> bool:
    if system == "billing":
        return spec.options.get("object") == notice.object
    if system == "crm":
        return spec.source == notice.object
    return spec.name == notice.object


def _streams(notice: Notice) -> list[StreamSpec]:
    specs = STREAM_TABLES[notice.source][0]
    named = [spec for spec in specs.values() if _names(notice.source, spec, notice)]
    if notice.source == "erp" and any(spec.source == "transaction" for spec in named):
        # A transaction's lines and links have no change column: re-read them with it.
        named += [spec for spec in specs.values() if "parent_fields" in spec.options]
    return named


def streams_named(notices: list[Notice]) -> dict[str, list[Notice]]:
    """Raw stream key → the notices that name one of its records."""
    by_stream: dict[str, list[Notice]] = defaultdict(list)
    for notice in notices:
        for spec in _streams(notice):
            by_stream[stream_key(notice.source, spec.name)].append(notice)
    return dict(by_stream)


def notified_for(system: str, notices: list[Notice]) -> list[Any]:
    """What the system's client fetches: billing reads the events, the others the ids."""
    if system == "billing":
        return [notice.event for notice in notices]
    return sorted({notice.record_id for notice in notices})
