"""Bad input never crashes a server, never stops the run, never silently changes a value.

A hand-edited state file either stops the loader with `path:line: field: reason`, or (when a
system sends a value its contract forbids) the record is quarantined with its id, field and
value while the rest of the run reconciles exactly as it would have without it.
"""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from revops_pipelines.connectors.billing import BillingClient
from revops_pipelines.connectors.crm import CrmClient
from revops_pipelines.connectors.erp import ErpClient
from revops_pipelines.raw.extract import STREAM_TABLES, StreamStats, extract_stream, stream_key
from revops_pipelines.raw.store import read_cursor
from revops_pipelines.reconciliation.run import now_for, reconciliation_vars
from revops_pipelines.sandbox.faults import FaultSpec
from revops_pipelines.sandbox.generate import generate_state
from revops_pipelines.sandbox.serve import SandboxServer, SandboxUrls, build_apps
from revops_pipelines.sandbox.state import Credentials, StateFileError, StateStore
from revops_pipelines.sqlmodels import load_models, run_models

FAST = {"rate_limit": 0, "backoff_initial": 0.02, "backoff_max": 0.2, "max_attempts": 4}
FINDING_KEY = ("drift_type", "entity", "crm_id", "billing_id", "erp_id", "field")


# ------------------------------------------------------------------ the loader stops


def _edit_first(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[0])
    change(record)
    lines[0] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda record: record.__setitem__(field, value)


def _first_price(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda record: record["items"]["data"][0]["price"].__setitem__(field, value)


LOADER_STOPS = [
    # Why 1: wrong types reach raw and crash the models.
    ("why1", "billing/invoices.jsonl", _set("total", "abc"), "total: 'abc' is not an integer"),
    ("why1", "crm/Opportunity.jsonl", _set("Amount", "twelve"), "Amount: 'twelve' is not a number"),
    (
        "why1",
        "erp/invoice.jsonl",
        _set("lastModifiedDate", "yesterday"),
        "lastModifiedDate: 'yesterday' is not a datetime",
    ),
    # Why 2: values silently changed on the way.
    ("why2", "billing/invoices.jsonl", _set("total", 531.65), "total: 531.65 is not an integer"),
    (
        "why2",
        "billing/subscriptions.jsonl",
        _first_price("unit_amount", 12.5),
        "items.data[0].price.unit_amount: 12.5 is not an integer",
    ),
    ("why2", "erp/invoice.jsonl", _set("total", "abc"), "total: 'abc' is not a number"),
    (
        "why2",
        "billing/subscriptions.jsonl",
        lambda record: record.pop("items"),
        "items: is required",
    ),
    # Why 3: one bad cursor value blocks every later incremental load.
    (
        "why3",
        "crm/Account.jsonl",
        _set("SystemModstamp", 12345),
        "SystemModstamp: 12345 is not a datetime",
    ),
    # Why 5: contract breaks the loader missed.
    ("why5", "crm/Account.jsonl", _set("Id", "   "), "Id: '   ' is blank"),
    ("why5", "billing/invoices.jsonl", _set("amount_due", float("nan")), "NaN is not JSON"),
    (
        "why5",
        "erp/invoice.jsonl",
        _set("dateCreated", "2025-02-30T00:00:00Z"),
        "dateCreated: '2025-02-30T00:00:00Z' is not a calendar datetime",
    ),
]


@pytest.mark.parametrize(
    ("why", "file", "change", "reason"),
    LOADER_STOPS,
    ids=[f"{case[0]}-{case[1]}-{case[3].split(':')[0]}" for case in LOADER_STOPS],
)
def test_hand_edited_line_stops_the_loader_with_path_line_field_reason(
    handwritten_state: Path, why: str, file: str, change: Callable, reason: str
) -> None:
    path = handwritten_state / file
    _edit_first(path, change)
    with pytest.raises(StateFileError) as caught:
        StateStore.load(handwritten_state)
    assert str(caught.value).startswith(f"{path}:1: ")
    assert reason in str(caught.value)


def test_an_id_shared_by_two_transaction_files_stops_the_loader(handwritten_state: Path) -> None:
    invoice_id = json.loads((handwritten_state / "erp/invoice.jsonl").read_text().splitlines()[0])
    memo = handwritten_state / "erp/creditmemo.jsonl"
    _edit_first(memo, _set("id", invoice_id["id"]))
    with pytest.raises(StateFileError, match=rf"creditmemo.jsonl:1: id: '{invoice_id['id']}'"):
        StateStore.load(handwritten_state)


def test_deep_nesting_stops_the_loader_naming_the_file(handwritten_state: Path) -> None:
    path = handwritten_state / "billing/customers.jsonl"
    deep = '{"id": "cus_deep", "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}"
    shallow_but_deep = '{"id": "cus_deep", "x": ' + "[" * 40 + "]" * 40 + "}"
    for line in (deep, shallow_but_deep):
        path.write_text(line + "\n", encoding="utf-8")
        with pytest.raises(StateFileError, match=r"customers.jsonl:1: nested deeper than 32"):
            StateStore.load(handwritten_state)


def test_a_leading_bom_is_stripped_and_never_served(handwritten_state: Path) -> None:
    path = handwritten_state / "billing/customers.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    store = StateStore.load(handwritten_state)
    with _serving(store) as urls:
        response = httpx.get(
            f"{urls.billing}/v1/customers", headers={"Authorization": "Bearer sk_test_x"}
        )
    assert response.status_code == 200
    assert b"\xef\xbb\xbf" not in response.content
    assert json.loads(response.content)["data"]


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_rewritten_state_files_keep_their_mode(handwritten_state: Path, mode: int) -> None:
    path = handwritten_state / "billing/customers.jsonl"
    os.chmod(path, mode)
    store = StateStore.load(handwritten_state)
    customers = store.collection("billing", "customers")
    customers.put(dict(customers.records[0], name="Renamed"))
    store.persist("billing", "customers")
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert json.loads(path.read_text().splitlines()[0])["name"] == "Renamed"


# ------------------------------------------------------------------ quarantined in raw


@contextmanager
def _serving(store: StateStore) -> Iterator[SandboxUrls]:
    apps = build_apps(
        store,
        credentials=Credentials(),
        faults=dict.fromkeys(("crm", "billing", "erp"), FaultSpec()),
        rate_limits={},
        seed=1,
    )
    server = SandboxServer(apps)
    try:
        yield server.start()
    finally:
        server.stop()


def _clients(urls: SandboxUrls) -> dict[str, Any]:
    return {
        "crm": CrmClient(urls.crm, client_id="test", client_secret="secret", **FAST),
        "billing": BillingClient(urls.billing, api_key="sk_test_bad_input", **FAST),
        "erp": ErpClient(urls.erp, token="erp-token", **FAST),
    }


def _extract(store: StateStore, con: duckdb.DuckDBPyConnection, *, run_id: str) -> dict:
    with _serving(store) as urls:
        clients = _clients(urls)
        try:
            return {
                stream_key(system, name): extract_stream(clients[system], con, name, run_id=run_id)
                for system, (specs, _) in STREAM_TABLES.items()
                for name in specs
            }
        finally:
            for client in clients.values():
                client.close()


def _findings(con: duckdb.DuckDBPyConnection, as_of: str) -> list[dict[str, Any]]:
    run_models(con, load_models(), vars=reconciliation_vars(now=now_for(as_of)))
    cursor = con.execute("SELECT * FROM reconciliation.findings")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small generated world with drift, and the findings of its clean run."""
    state = tmp_path_factory.mktemp("world") / "state"
    generate_state(state, customers=40, months=6, seed=11, drift_rate=0.5)
    as_of = json.loads((state / "manifest.json").read_text())["as_of"]
    with duckdb.connect(":memory:") as con:
        stats = _extract(StateStore.load(state), con, run_id="clean")
        findings = _findings(con, as_of)
    assert not any(s.quarantined for s in stats.values())
    assert findings, "the world must have findings for the comparison to mean anything"
    return {"state": state, "as_of": as_of, "findings": findings}


def _values(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _values(item)
    elif isinstance(value, list):
        for item in value:
            yield from _values(item)
    elif isinstance(value, str):
        yield value


def _touched(store: StateStore, record_ids: set[str]) -> set[str]:
    """The ids given, the ids they name, and the ids of every record naming one of them."""
    touched = set(record_ids)
    for collection in store._collections.values():
        for key, record in collection.index.items():
            named = set(_values(record))
            if key in record_ids:
                touched |= named
            elif named & record_ids:
                touched.add(key)
    return touched


def _untouched(findings: list[dict[str, Any]], touched: set[str]) -> Counter:
    ids = ("crm_id", "billing_id", "erp_id", "correlation_id")
    return Counter(
        tuple(f[c] for c in FINDING_KEY) for f in findings if not any(f[c] in touched for c in ids)
    )


# (system, state file, stream key, how to find the record, the change, the field it breaks)
Tamper = tuple[str, str, str, Callable[[dict], bool], Callable[[dict], None], str, str]


def _any(record: dict[str, Any]) -> bool:
    return True


TAMPERINGS: dict[str, list[Tamper]] = {
    "why1": [
        ("billing", "invoices", "billing_invoice", _any, _set("total", "abc"), "total", '"abc"'),
        (
            "crm",
            "Opportunity",
            "crm_opportunity",
            lambda r: r.get("Amount") is not None,
            _set("Amount", "twelve"),
            "Amount",
            '"twelve"',
        ),
        (
            "erp",
            "invoice",
            "erp_invoice",
            _any,
            _set("lastModifiedDate", "yesterday"),
            "lastmodifieddate",
            '"yesterday"',
        ),
    ],
    "why2": [
        ("billing", "invoices", "billing_invoice", _any, _set("total", 531.65), "total", "531.65"),
        (
            "billing",
            "subscriptions",
            "billing_subscription",
            lambda r: len(r["items"]["data"]) > 0,
            _first_price("unit_amount", 12.5),
            "items.data[0].price.unit_amount",
            "12.5",
        ),
        (
            "billing",
            "subscriptions",
            "billing_subscription",
            _any,
            lambda record: record.pop("items"),
            "items",
            None,
        ),
    ],
    "why3": [
        (
            "crm",
            "Account",
            "crm_account",
            _any,
            _set("SystemModstamp", 12345),
            "SystemModstamp",
            "12345",
        ),
    ],
}


def _pick(store: StateStore, tamper: Tamper, taken: set[str]) -> str:
    system, name, _, wanted, *_ = tamper
    collection = store.collection(system, name)
    return next(k for k, r in collection.index.items() if k not in taken and wanted(r))


def _apply(store: StateStore, tamper: Tamper, record_id: str) -> None:
    """Change the served record behind the loader's back, as a real API could send it."""
    system, name, _, _, change, *_ = tamper
    collection = store.collection(system, name)
    change(collection.get(record_id))
    collection.raw.pop(record_id, None)
    collection.version += 1


@pytest.mark.parametrize("why", sorted(TAMPERINGS))
def test_breaking_records_are_quarantined_and_the_rest_reconciles_unchanged(
    world: dict[str, Any], why: str
) -> None:
    store = StateStore.load(world["state"])
    picked: dict[str, str] = {}
    for position, tamper in enumerate(TAMPERINGS[why]):
        picked[str(position)] = _pick(store, tamper, set(picked.values()))
    touched = _touched(store, set(picked.values()))
    for position, tamper in enumerate(TAMPERINGS[why]):
        _apply(store, tamper, picked[str(position)])

    with duckdb.connect(":memory:") as con:
        stats: dict[str, StreamStats] = _extract(store, con, run_id=why)
        quarantined = con.execute(
            "SELECT stream, record_id, field, value FROM raw._quarantine ORDER BY stream, record_id"
        ).fetchall()
        expected = sorted(
            (tamper[2], picked[str(position)], tamper[5], tamper[6])
            for position, tamper in enumerate(TAMPERINGS[why])
        )
        assert quarantined == expected
        for stream, record_id, _, _ in expected:
            assert stats[stream].quarantined == Counter(e[0] for e in expected)[stream]
            assert not con.execute(
                f"SELECT count(*) FROM raw.{stream} WHERE id = ?", [record_id]
            ).fetchone()[0]
        findings = _findings(con, world["as_of"])

    assert _untouched(findings, touched) == _untouched(world["findings"], touched)
    assert _untouched(findings, touched), "untouched findings remain to compare"


def _read_accounts(store: StateStore, con: duckdb.DuckDBPyConnection, *, run_id: str):
    with _serving(store) as urls:
        client = _clients(urls)["crm"]
        try:
            return extract_stream(client, con, "account", run_id=run_id)
        finally:
            client.close()


def test_an_unreadable_cursor_is_quarantined_and_the_next_incremental_load_is_valid(
    world: dict[str, Any],
) -> None:
    state = StateStore.load(world["state"])
    with duckdb.connect(":memory:") as con:
        clean_cursor = _read_accounts(state, con, run_id="clean").cursor
    accounts = state.collection("crm", "Account")
    oldest = min(accounts.records, key=lambda r: r["SystemModstamp"])["Id"]
    tamper = ("crm", "Account", "crm_account", _any, _set("SystemModstamp", 12345), "", "")
    _apply(state, tamper, oldest)
    with duckdb.connect(":memory:") as con:
        first = _read_accounts(state, con, run_id="r1")
        assert first.quarantined == 1
        # The cursor comes from the readable stamps: the same as without the broken record.
        assert first.cursor == clean_cursor
        assert read_cursor(con, "crm_account") == clean_cursor
        # The source fixes the record; the next incremental query is valid and picks it up.
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        _apply(state, ("crm", "Account", "", _any, _set("SystemModstamp", now), "", ""), oldest)
        second = _read_accounts(state, con, run_id="r2")
        assert second.new == 1 and second.quarantined == 0
        stored = con.execute("SELECT count(*) FROM raw.crm_account WHERE id = ?", [oldest])
        assert stored.fetchone()[0] == 1
