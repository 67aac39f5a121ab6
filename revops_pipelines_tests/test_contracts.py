"""Both contracts accept a null or absent value wherever the real APIs may leave one out."""

from __future__ import annotations

import pytest

from revops_pipelines.raw.contract import FIELDS, find_breach
from revops_pipelines.raw.extract import STREAM_TABLES, stream_key
from revops_pipelines.sandbox.contract import CONTRACT, ContractError, check_record
from revops_pipelines.sandbox.state import ID_FIELD

PRIMARY_KEYS = {
    stream_key(system, name): spec.primary_key
    for system, (specs, _) in STREAM_TABLES.items()
    for name, spec in specs.items()
}
REQUIRED_LISTS = {"items": {"data": []}, "lines": {"data": []}}


def _nulls(paths: list[str]) -> dict:
    """Every top-level field of the contract set to null, the required lists left empty."""
    record = {path.split(".")[0].removesuffix("[]"): None for path in paths}
    for name, empty in REQUIRED_LISTS.items():
        if name in record:
            record[name] = empty
    return record


def test_every_raw_stream_has_a_contract():
    assert set(FIELDS) == set(PRIMARY_KEYS)


@pytest.mark.parametrize("stream", sorted(FIELDS))
def test_raw_contract_takes_null_for_every_field_but_the_key(stream: str):
    record = {**_nulls(list(FIELDS[stream])), PRIMARY_KEYS[stream]: "x1"}
    assert find_breach(stream, record) is None
    # Only a tombstone may leave out the lists staging unnests.
    bare = {PRIMARY_KEYS[stream]: "x1"}
    breach = find_breach(stream, bare)
    assert (breach is None) == (stream not in ("billing_invoice", "billing_subscription"))
    assert find_breach(stream, bare, deleted=True) is None


@pytest.mark.parametrize(("system", "name"), sorted(CONTRACT))
def test_state_contract_takes_null_for_every_field_but_the_id(system: str, name: str):
    check_record(system, name, {**_nulls(list(CONTRACT[(system, name)])), ID_FIELD[system]: "1"},
                 id_field=ID_FIELD[system])  # fmt: skip
    with pytest.raises(ContractError, match="is required"):
        check_record(system, name, {}, id_field=ID_FIELD[system])


@pytest.mark.parametrize(
    ("stream", "record", "field"),
    [
        (
            "billing_invoice",
            {"id": "i", "lines": {"data": [{"amount": 1.5}]}},
            "lines.data[0].amount",
        ),
        ("billing_invoice", {"id": "in_1", "lines": {"data": "x"}}, "lines.data"),
        ("billing_price", {"id": "p", "unit_amount": True}, "unit_amount"),
        ("crm_opportunity", {"Id": "006", "Amount": float("inf")}, "Amount"),
        ("crm_account", {"Id": "1", "SystemModstamp": "2025-02-30T10:00:00Z"}, "SystemModstamp"),
        ("erp_invoice", {"id": "1", "foreigntotal": "531,65"}, "foreigntotal"),
        ("erp_customer", {"id": "1", "isinactive": "yes"}, "isinactive"),
        ("erp_transaction_line", {"id": "1", "rate": "1e400"}, "rate"),
    ],
)
def test_raw_contract_names_the_breaking_field(stream: str, record: dict, field: str):
    breach = find_breach(stream, record)
    assert breach is not None and breach.field == field


def test_raw_contract_takes_suiteql_numbers_as_text_and_salesforce_datetimes():
    assert find_breach("erp_invoice", {"id": "1", "foreigntotal": "531.65"}) is None
    assert find_breach("erp_transaction_line", {"id": "1", "linesequencenumber": "3"}) is None
    stamp = {"Id": "001", "SystemModstamp": "2025-01-02T03:04:05.000+0000"}
    assert find_breach("crm_account", stamp) is None
