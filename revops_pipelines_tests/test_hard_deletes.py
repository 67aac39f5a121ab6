"""Records deleted at the source: a full refresh tombstones them and reconciliation forgets them."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from revops_pipelines.reconciliation.run import vars_from_settings
from revops_pipelines.sandbox.generate import generate_state
from revops_pipelines.sandbox.serve import running_sandbox
from revops_pipelines.settings import Settings
from revops_pipelines.sqlmodels import load_models, run_models
from revops_pipelines_tests.test_extract_sandbox import extract


def _read(state: Path, name: str) -> list[dict]:
    path = state / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _drop(state: Path, name: str, gone) -> list[dict]:
    """Removes the records `gone` picks from one state file, as a hard delete at the source."""
    records = _read(state, name)
    dropped = [r for r in records if gone(r)]
    kept = [r for r in records if not gone(r)]
    (state / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    return dropped


def _findings(con) -> dict[str, tuple]:
    rows = con.execute(
        "SELECT exception_id, drift_type, billing_id, erp_id FROM reconciliation.findings"
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def _deleted(con, table: str, ids) -> dict[str, bool]:
    rows = con.execute(
        f"SELECT id, deleted FROM raw.{table} WHERE id IN (SELECT unnest(?::VARCHAR[]))",
        [sorted(ids)],
    ).fetchall()
    return dict(rows)


def test_records_deleted_at_the_source_become_tombstones_and_leave_the_findings(tmp_path):
    state = tmp_path / "state"
    generate_state(state, customers=40, months=3, seed=4, drift_rate=0.5)
    models = load_models()
    as_of = json.loads((state / "manifest.json").read_text())["as_of"]
    reconciliation_vars = vars_from_settings(Settings(), as_of=as_of)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        with running_sandbox(state, seed=1) as urls:
            extract(urls, con, run_id="r1")
        run_models(con, models, vars=reconciliation_vars)
        before = _findings(con)
        # A billing invoice with a finding, deleted in both systems with all that hangs on it.
        invoice = next(b for _, (code, b, _) in sorted(before.items()) if b and b.startswith("in_"))
        payments = _drop(state, "billing/invoice_payments", lambda r: r["invoice"] == invoice)
        _drop(state, "billing/credit_notes", lambda r: r["invoice"] == invoice)
        assert _drop(state, "billing/invoices", lambda r: r["id"] == invoice)
        # and an ERP invoice billing never had, deleted in the ERP
        orphan = next(
            e for _, (code, _, e) in sorted(before.items()) if code == "invoice_orphan_in_erp"
        )
        erp_invoices = {
            r["id"]
            for r in _drop(
                state, "erp/invoice", lambda r: r["externalId"] == invoice or r["id"] == orphan
            )
        }
        assert orphan in erp_invoices
        erp_payments = {
            r["id"]
            for r in _drop(
                state,
                "erp/customerpayment",
                lambda r: any(i["doc"]["id"] in erp_invoices for i in r["apply"]["items"]),
            )
        }
        _drop(
            state,
            "erp/creditmemo",
            lambda r: (r.get("createdFrom") or {}).get("id") in erp_invoices,
        )
        gone = {invoice, *erp_invoices, *erp_payments, *(p["id"] for p in payments)}

        with running_sandbox(state, seed=1) as urls:
            incremental = extract(urls, con, run_id="r2")
            # events do not tell of a hard delete: an incremental read keeps the records
            assert _deleted(con, "billing_invoice", [invoice]) == {invoice: False}
            assert incremental["billing_invoice"].deleted == 0
            full = extract(urls, con, run_id="r3", full_refresh=True)
        assert _deleted(con, "billing_invoice", [invoice]) == {invoice: True}
        assert set(_deleted(con, "erp_invoice", erp_invoices).values()) == {True}
        assert set(_deleted(con, "erp_customer_payment", erp_payments).values()) <= {True}
        assert full["billing_invoice"].deleted == 1
        assert full["erp_invoice"].deleted == len(erp_invoices)
        live = con.execute("SELECT count(*) FROM raw.billing_invoice WHERE NOT deleted").fetchone()[
            0
        ]
        assert live == len(_read(state, "billing/invoices"))

        run_models(con, models, vars=reconciliation_vars)
        after = _findings(con)
    touching = {k for k, (_, b, e) in before.items() if b in gone or e in gone}
    assert touching
    assert not {k for k, (_, b, e) in after.items() if b in gone or e in gone}
    assert set(after) == set(before) - touching
