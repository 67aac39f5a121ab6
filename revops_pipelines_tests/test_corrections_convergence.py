"""A generated scenario, the whole pipeline, one push, one re-reconciliation: it converges.

Also: the dry run changes nothing anywhere, and a plan over the blast-radius cap is refused
until a person approves it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from revops_pipelines import cli
from revops_pipelines.corrections.policy import default_path
from revops_pipelines.sandbox.serve import running_sandbox
from revops_pipelines.sandbox.state import StateStore

# The whole pipeline once, in its own process on the sandbox, and nothing else: the demo
# would also push, and make live changes that add findings of their own.
RECONCILE = """
import sys
import dagster as dg
from revops_pipelines.demo import ensure_local_dagster_home, ensure_scenario, sandbox_systems
from revops_pipelines.settings import Settings

settings = Settings.from_env()
ensure_scenario(settings.sandbox_state_dir, customers=60, months=3, seed=7)
ensure_local_dagster_home(settings.data_dir)
with sandbox_systems(settings.sandbox_state_dir):
    from revops_pipelines.definitions import definitions

    job = definitions().get_job_def("reconcile_job")
    with dg.DagsterInstance.get() as instance:
        sys.exit(0 if job.execute_in_process(instance=instance).success else 1)
"""


def _reconcile(data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVOPS_")}
    env |= {"REVOPS_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(data_dir / "dagster_home")}
    done = subprocess.run(
        [sys.executable, "-c", RECONCILE],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "dagster_home" not in path.parts
    }


def _open(data_dir: Path) -> list[tuple]:
    with duckdb.connect(str(data_dir / "revops.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT exception_id, drift_type, action, status FROM reconciliation.drift_exceptions"
        ).fetchall()


def _erp_duplicates(state: Path) -> dict[str, list[str]]:
    store = StateStore.load(state)
    found = {}
    for name in ("customer", "invoice", "customerpayment"):
        counts = Counter(
            str(r["externalId"]) for r in store.collection("erp", name) if r.get("externalId")
        )
        found[name] = sorted(k for k, n in counts.items() if n > 1)
    return found


@pytest.fixture(scope="module")
def converged(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("converge") / "data"
    _reconcile(data_dir)
    snapshot = data_dir.parent / "before_push.duckdb"
    shutil.copy(data_dir / "revops.duckdb", snapshot)
    before = _open(data_dir)
    duplicates_before = _erp_duplicates(data_dir / "sandbox_state")
    strict = data_dir.parent / "strict_policy.toml"
    strict.write_text(
        default_path().read_text().replace("max_actions = 1000", "max_actions = 1"),
        encoding="utf-8",
    )
    saved = dict(os.environ)
    steps: dict[str, object] = {}
    try:
        os.environ["REVOPS_DATA_DIR"] = str(data_dir)
        with running_sandbox(data_dir / "sandbox_state") as urls:
            for system in ("crm", "billing", "erp"):
                os.environ[f"REVOPS_{system.upper()}_URL"] = urls.for_system(system)
            files = _digest(data_dir)
            steps["plan_exit"] = cli.main(["corrections", "plan"])
            steps["after_plan_same"] = _digest(data_dir) == files
            os.environ["REVOPS_POLICY_PATH"] = str(strict)
            state = _digest(data_dir / "sandbox_state")
            steps["refused_exit"] = cli.main(["corrections", "push"])
            steps["refusal_sent_nothing"] = _digest(data_dir / "sandbox_state") == state
            with duckdb.connect(str(data_dir / "revops.duckdb"), read_only=True) as con:
                plan_id = con.execute(
                    "SELECT plan_id FROM corrections.correction_plan LIMIT 1"
                ).fetchone()[0]
            steps["approve_exit"] = cli.main(["corrections", "approve", plan_id])
            steps["push_exit"] = cli.main(["corrections", "push"])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with duckdb.connect(str(data_dir / "revops.duckdb"), read_only=True) as con:
        planned = {
            row[0]
            for row in con.execute("SELECT reason FROM corrections.correction_plan").fetchall()
        }
        held = dict(
            con.execute("SELECT exception_id, reason FROM corrections.held_findings").fetchall()
        )
    _reconcile(data_dir)
    return {
        "data_dir": data_dir,
        "before": before,
        "after": _open(data_dir),
        "planned": planned,
        "held": held,
        "duplicates_before": duplicates_before,
        "snapshot": snapshot,
        **steps,
    }


def test_one_push_removes_every_planned_finding_and_leaves_review_ones(converged) -> None:
    before = {row[0]: row for row in converged["before"] if row[3] == "open"}
    after = {row[0]: row for row in converged["after"]}
    planned = converged["planned"]
    assert planned and planned <= before.keys()
    auto = {k for k, row in before.items() if row[2] == "auto"}
    assert auto - planned == set(converged["held"]) & auto
    for exception_id in planned:
        assert after[exception_id][3] == "resolved", after[exception_id]
    review = {k for k, row in before.items() if row[2] == "review"}
    assert review and all(after[k][3] == "open" for k in review)
    new = set(after) - set(before)
    assert new == set(), [after[k] for k in new]


def test_no_external_id_is_held_twice_after_the_push(converged) -> None:
    assert (
        _erp_duplicates(converged["data_dir"] / "sandbox_state") == (converged["duplicates_before"])
    )


def test_dry_run_changes_nothing_and_the_cap_holds_until_approved(converged) -> None:
    assert converged["plan_exit"] == 0 and converged["after_plan_same"]
    assert converged["refused_exit"] == 3 and converged["refusal_sent_nothing"]
    assert converged["approve_exit"] == 0 and converged["push_exit"] == 0


def _finding(con, code: str) -> dict:
    cursor = con.execute(
        "SELECT * FROM reconciliation.drift_exceptions "
        "WHERE drift_type = ? AND status = 'open' LIMIT 1",
        [code],
    )
    names = [d[0] for d in cursor.description]
    return dict(zip(names, cursor.fetchone(), strict=True))


def test_the_planner_holds_what_it_cannot_do_safely(converged, tmp_path) -> None:
    from revops_pipelines.corrections.planner import build_plan
    from revops_pipelines.corrections.policy import load_policy

    copy = tmp_path / "planner.duckdb"
    shutil.copy(converged["snapshot"], copy)
    policy = load_policy(default_path())
    with duckdb.connect(str(copy)) as con:
        missing = _finding(con, "customer_missing_in_erp")
        invoice = _finding(con, "invoice_missing_in_erp")
        mismatch = _finding(con, "customer_attribute_mismatch")
        plan = build_plan(con, policy, findings=[missing, invoice])
        # A root cause plans the customer, then its invoices, then their payments.
        order = [a.record_type for a in plan.actions if a.reason == missing["exception_id"]]
        assert order[0] == "customer" and order == sorted(order, key=["customer", "invoice",
            "customerpayment"].index)  # fmt: skip
        invoices = {a.action_id for a in plan.actions if a.record_type == "invoice"}
        for action in plan.actions:
            if action.record_type == "customerpayment" and action.reason == missing["exception_id"]:
                assert set(action.prerequisites) <= invoices and action.prerequisites
        empty = build_plan(con, policy, findings=[{**mismatch, "expected": None}])
        assert not empty.actions and "never write empty" in empty.held[0].reason
        con.execute("DELETE FROM canonical.product WHERE source_system = 'erp'")
        no_item = build_plan(con, policy, findings=[invoice])
        assert not no_item.actions and "has no ERP item" in no_item.held[0].reason
        con.execute("UPDATE canonical.customer SET erp_subsidiary_id = NULL")
        unmapped = build_plan(con, policy, findings=[missing])
        assert not unmapped.actions and "subsidiary" in unmapped.held[0].reason
    again = build_plan(duckdb.connect(str(converged["snapshot"]), read_only=True), policy)
    assert (
        again.plan_id
        == build_plan(duckdb.connect(str(converged["snapshot"]), read_only=True), policy).plan_id
    )
