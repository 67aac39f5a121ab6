"""The state directory loads as the contract says, rejects what it cannot serve, writes back."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from revops_pipelines.sandbox.state import FILES, OPTIONAL, StateFileError, StateStore


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_loads_every_contract_file_in_file_order(handwritten_state: Path) -> None:
    store = StateStore.load(handwritten_state)
    for system, names in FILES.items():
        for name in names:
            path = handwritten_state / system / f"{name}.jsonl"
            expected = _lines(path) if path.exists() else []
            assert store.collection(system, name).records == expected


def test_as_of_is_end_of_manifest_day(handwritten_state: Path) -> None:
    assert StateStore.load(handwritten_state).as_of == datetime(2025, 6, 28, 23, 59, 59, tzinfo=UTC)
    (handwritten_state / "manifest.json").unlink()
    assert StateStore.load(handwritten_state).as_of is None


def test_missing_optional_file_is_empty_and_missing_required_file_is_an_error(
    handwritten_state: Path,
) -> None:
    for system, name in OPTIONAL:
        (handwritten_state / system / f"{name}.jsonl").unlink()
    store = StateStore.load(handwritten_state)
    assert len(store.collection("billing", "events")) == 0
    (handwritten_state / "erp" / "item.jsonl").unlink()
    with pytest.raises(StateFileError) as caught:
        StateStore.load(handwritten_state)
    assert caught.value.path.name == "item.jsonl"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"id": "cus_X", "name": ', "invalid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"name": "no id"}', "id: is required"),
        ('{"id": "", "name": "empty id"}', "id: '' is blank"),
        ('{"id": "cus_R1a2B3c4D5e6F7", "object": "customer"}', "duplicate id"),
        ('{"id": "cus_A"} {"id": "cus_B"}', "more than one JSON value"),
    ],
)
def test_malformed_line_names_file_line_and_reason(
    handwritten_state: Path, line: str, reason: str
) -> None:
    path = handwritten_state / "billing" / "customers.jsonl"
    original = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([*original[:2], "", line, *original[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(StateFileError) as caught:
        StateStore.load(handwritten_state)
    error = caught.value
    assert error.path == path
    assert error.line == 4  # two good lines, one blank line, then the bad one
    assert reason in error.reason
    assert str(error).startswith(f"{path}:4: ")


def test_crm_records_are_keyed_by_capital_id(handwritten_state: Path) -> None:
    path = handwritten_state / "crm" / "Product2.jsonl"
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "lowercase only", "Name": "x"}\n')
    with pytest.raises(StateFileError, match="Id: is required"):
        StateStore.load(handwritten_state)


def test_put_replaces_in_place_appends_new_and_bumps_version(handwritten_state: Path) -> None:
    store = StateStore.load(handwritten_state)
    customers = store.collection("billing", "customers")
    before = store.version("billing")
    erp_before = store.version("erp")
    first = dict(customers.records[0], email="new@acme.example")
    assert customers.put(first) is False
    assert customers.records[0]["email"] == "new@acme.example"
    assert customers.get(first["id"]) is first
    assert customers.put({"id": "cus_New000000001", "object": "customer"}) is True
    assert customers.records[-1]["id"] == "cus_New000000001"
    assert store.version("billing") == before + 2
    assert store.version("erp") == erp_before


def test_persist_round_trips_unknown_fields_and_unicode(handwritten_state: Path) -> None:
    store = StateStore.load(handwritten_state)
    customers = store.collection("billing", "customers")
    customers.put({"id": "cus_Zz", "object": "customer", "x_unknown": {"keep": [1, None]}})
    store.persist("billing", "customers")
    reloaded = StateStore.load(handwritten_state).collection("billing", "customers")
    assert reloaded.records == customers.records
    text = (handwritten_state / "billing" / "customers.jsonl").read_text(encoding="utf-8")
    assert "Müller & Söhne GmbH" in text
    leftovers = [p.name for p in (handwritten_state / "billing").iterdir() if p.suffix == ".tmp"]
    assert leftovers == []


def test_ids_are_strings_and_found_by_them(handwritten_state: Path) -> None:
    path = handwritten_state / "erp" / "item.jsonl"
    path.write_text('{"id": "77", "itemId": "PRO-M"}\n', encoding="utf-8")
    assert StateStore.load(handwritten_state).collection("erp", "item").get("77")["id"] == "77"
    path.write_text('{"id": 77, "itemId": "PRO-M"}\n', encoding="utf-8")
    with pytest.raises(StateFileError, match=r"item.jsonl:1: id: 77 is not a string id"):
        StateStore.load(handwritten_state)


def test_missing_state_directory(tmp_path: Path) -> None:
    with pytest.raises(StateFileError, match="does not exist"):
        StateStore.load(tmp_path / "nowhere")


def test_bad_manifest_is_reported(handwritten_state: Path) -> None:
    (handwritten_state / "manifest.json").write_text('{"as_of": "28/06/2025"}', encoding="utf-8")
    with pytest.raises(StateFileError, match="as_of"):
        StateStore.load(handwritten_state)


def test_fixture_copy_is_private(handwritten_state: Path) -> None:
    shutil.rmtree(handwritten_state / "erp")
    assert (Path(__file__).parent / "fixtures" / "handwritten_state" / "erp").is_dir()
