"""Each system's minor units: Stripe counts ISK in hundredths of a krona, ISO 4217 (and so the
ERP, whose amounts are major units) has none; money is compared in ISO minor units."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from revops_pipelines.reconciliation.run import now_for, reconciliation_vars
from revops_pipelines.sandbox.raw_tables import load_state_dir
from revops_pipelines.sqlmodels import load_models, run_models
from revops_pipelines_tests.conftest import HANDWRITTEN_STATE

GULF_OPPORTUNITY = "006Hs00001XyZaDIAV"
BILLING_MONEY = {
    "subtotal",
    "total",
    "total_excluding_tax",
    "amount_due",
    "amount_paid",
    "amount_remaining",
    "amount",
    "taxable_amount",
    "unit_amount",
    "amount_requested",
}
ERP_MONEY = {"subtotal", "taxTotal", "total", "amountRemaining", "rate", "amount", "payment"}
ERP_MONEY |= {"applied", "unapplied"}
CRM_MONEY = {"Amount", "UnitPrice", "TotalPrice"}


def _scaled(value: object, keys: set[str], factor: int) -> object:
    if isinstance(value, dict):
        return {
            k: v * factor
            if k in keys and isinstance(v, int | float) and not isinstance(v, bool)
            else (str(int(v) * factor) if k == "unit_amount_decimal" else _scaled(v, keys, factor))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scaled(v, keys, factor) for v in value]
    return value


def _in_krona(tmp_path: Path, *, billing_factor: int) -> Path:
    """The hand-written state with the KWD customer's records in ISK: one KWD fils becomes one
    krona, so Stripe amounts (hundredths) grow by `billing_factor` = 100 and ERP and CRM major
    units by 1000."""
    state = tmp_path / "state"
    shutil.copytree(HANDWRITTEN_STATE, state)
    for path in state.glob("*/*.jsonl"):
        system = path.parent.name
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        changed = []
        for record in records:
            text = json.dumps(record)
            ours = '"kwd"' in text or '"KWD"' in text or GULF_OPPORTUNITY in text
            if ours and path.name != "Account.jsonl":
                keys, factor = {
                    "billing": (BILLING_MONEY, billing_factor),
                    "erp": (ERP_MONEY, 1000),
                    "crm": (CRM_MONEY, 1000),
                }[system]
                record = _scaled(record, keys, factor)
            text = json.dumps(record).replace('"kwd"', '"isk"').replace('"KWD"', '"ISK"')
            changed.append(text)
        path.write_text("".join(line + "\n" for line in changed), encoding="utf-8")
    return state


def _run(state: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    load_state_dir(con, state)
    run_models(con, load_models(), vars=reconciliation_vars(now=now_for("2025-06-28")))
    return con


def test_isk_in_stripe_hundredths_gives_no_false_mismatch(tmp_path: Path) -> None:
    con = _run(_in_krona(tmp_path, billing_factor=100))
    totals = con.execute(
        "SELECT source_system, total_minor FROM canonical.invoice "
        "WHERE billing_invoice_id = 'in_1QabcGulf0001' ORDER BY 1"
    ).fetchall()
    assert totals == [("billing", 30_000), ("erp", 30_000)]  # 30 000 kr in ISO minor units
    paid = con.execute(
        "SELECT source_system, amount_minor FROM canonical.payment "
        "WHERE currency = 'ISK' ORDER BY 1"
    ).fetchall()
    assert paid == [("billing", 30_000), ("erp", 30_000)]
    assert con.execute("SELECT count(*) FROM reconciliation.findings").fetchone() == (0,)


def test_one_exponent_for_every_system_would_be_a_hundred_times_off(tmp_path: Path) -> None:
    # Stripe amounts written as if ISK had ISO's exponent: billing now says 300 kr.
    con = _run(_in_krona(tmp_path, billing_factor=1))
    codes = {r[0] for r in con.execute("SELECT drift_type FROM reconciliation.findings").fetchall()}
    assert {"invoice_amount_mismatch", "payment_amount_mismatch"} <= codes


@pytest.mark.parametrize(
    ("currency", "stripe_amount", "iso_minor"),
    [("isk", "123400", 1234), ("isk", "150", 2), ("mga", "500", 50_000), ("usd", "531", 531)],
)
def test_billing_amounts_in_iso_minor_units(currency: str, stripe_amount: str, iso_minor: int):
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw")
    con.execute(
        "CREATE TABLE raw.billing_price AS SELECT 'price_1' AS id, "
        "json_object('currency', ?, 'unit_amount', ?::BIGINT) AS payload, false AS deleted",
        [currency, stripe_amount],
    )
    models = [m for m in load_models() if m.name == "stg_billing_price"]
    run_models(con, models)
    assert con.execute("SELECT unit_amount_minor FROM staging.stg_billing_price").fetchone() == (
        iso_minor,
    )
