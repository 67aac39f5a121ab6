"""The ERP's subsidiary records decide which legal entities can post, not a list of our own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb

from revops_pipelines.reconciliation.run import now_for, reconciliation_vars
from revops_pipelines.sandbox.raw_tables import load_state_dir, read_jsonl
from revops_pipelines.sqlmodels import MODELS_ROOT, load_models, run_models
from revops_pipelines_tests.conftest import HANDWRITTEN_STATE

SAKURA = "001Hs00003AbCdGIAV"  # JP01, on ERP subsidiary 4
GULF = "001Hs00003AbCdHIAV"  # GB01, on ERP subsidiary 2


def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _edit(path: Path, key: str, record_id: str, **changes: object) -> None:
    records = read_jsonl(path)
    for record in records:
        if record[key] == record_id:
            for field, value in changes.items():
                if field == "metadata":
                    record["metadata"] = {**record["metadata"], **value}
                else:
                    record[field] = value
    _write(path, records)


def _state(tmp_path: Path) -> Path:
    """The hand-written state with an ERP subsidiary list unlike any seed: JP01's subsidiary
    lost its code, and Gulf moved to AE01, an entity only the ERP knows."""
    state = tmp_path / "state"
    shutil.copytree(HANDWRITTEN_STATE, state)
    subsidiaries = read_jsonl(state / "erp" / "subsidiary.jsonl")
    for subsidiary in subsidiaries:
        if subsidiary["id"] == "4":
            subsidiary["custrecord_legal_entity_code"] = None
    subsidiaries.append(
        {
            "id": "6",
            "name": "Acme Gulf FZE",
            "country": "AE",
            "currency": {"id": "2", "refName": "GBP"},
            "custrecord_legal_entity_code": "AE01",
        }
    )
    _write(state / "erp" / "subsidiary.jsonl", subsidiaries)
    _edit(state / "crm" / "Account.jsonl", "Id", GULF, Legal_Entity__c="AE01")
    _edit(
        state / "billing" / "customers.jsonl",
        "id",
        "cus_U4d5E6f7G8h9J0",
        metadata={"legal_entity": "AE01"},
    )
    _edit(
        state / "erp" / "customer.jsonl",
        "id",
        "1237",
        subsidiary={"id": "6", "refName": "Acme Gulf FZE"},
    )
    return state


def _run(state: Path, root: Path = MODELS_ROOT) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    load_state_dir(con, state)
    run_models(
        con, load_models(root), vars=reconciliation_vars(now=now_for("2025-06-28")), root=root
    )
    return con


def test_findings_follow_the_erp_subsidiaries(tmp_path: Path) -> None:
    con = _run(_state(tmp_path))
    findings = con.execute(
        "SELECT drift_type, crm_id, field FROM reconciliation.findings ORDER BY ALL"
    ).fetchall()
    # JP01 has no ERP subsidiary any more: Sakura cannot post. AE01 counts, though no list of
    # ours names it.
    assert findings == [("customer_missing_tax_or_entity", SAKURA, "legal_entity")]
    issues = con.execute(
        "SELECT rule, source_id FROM canonical.validation_issue ORDER BY ALL"
    ).fetchall()
    assert issues == [("legal_entity_unmapped", SAKURA)]
    mapped = dict(
        con.execute("SELECT source_id, erp_subsidiary_id FROM canonical.customer").fetchall()
    )
    assert mapped[GULF] == "6" and mapped[SAKURA] is None


def test_an_override_fills_a_subsidiary_without_a_code_but_never_replaces_one(
    tmp_path: Path,
) -> None:
    root = tmp_path / "sql"
    shutil.copytree(MODELS_ROOT, root)
    (root / "seeds" / "legal_entity_overrides.csv").write_text(
        "erp_subsidiary_id,legal_entity\n4,JP01\n2,XX01\n", encoding="utf-8"
    )
    con = _run(_state(tmp_path), root)
    assert con.execute("SELECT count(*) FROM reconciliation.findings").fetchone() == (0,)
    rows = con.execute(
        "SELECT subsidiary_id, legal_entity, origin FROM canonical.legal_entity_subsidiary "
        "ORDER BY subsidiary_id"
    ).fetchall()
    assert rows == [
        ("1", "US01", "erp"),
        ("2", "GB01", "erp"),
        ("3", "DE01", "erp"),
        ("4", "JP01", "override"),
        ("6", "AE01", "erp"),
    ]
