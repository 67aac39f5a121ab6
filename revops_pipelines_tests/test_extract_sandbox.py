"""Extraction end to end against the sandbox servers over real HTTP."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest

from revops_pipelines.connectors.base import BaseClient
from revops_pipelines.connectors.billing import BillingClient
from revops_pipelines.connectors.crm import CrmClient
from revops_pipelines.connectors.erp import ErpClient
from revops_pipelines.raw import store
from revops_pipelines.raw.extract import STREAM_TABLES, extract_stream, stream_key
from revops_pipelines.sandbox.serve import running_sandbox

HAS_ERP = importlib.util.find_spec("revops_pipelines.sandbox.erp") is not None
SYSTEMS = ("crm", "billing", "erp") if HAS_ERP else ("crm", "billing")
FAST = {"rate_limit": 0, "backoff_initial": 0.02, "backoff_max": 0.5, "max_attempts": 8}


WHOLE = ("erp_currency", "erp_currencyrate", "erp_subsidiary")


def make_clients(urls, **options) -> dict[str, BaseClient]:
    options = {**FAST, **options}
    return {
        "crm": CrmClient(urls.crm, client_id="test-client", client_secret="secret", **options),
        "billing": BillingClient(urls.billing, api_key="sk_test_e2e", **options),
        "erp": ErpClient(urls.erp, token="erp-token", **options),
    }


def extract(clients, con, *, run_id: str, systems=SYSTEMS, full_refresh=False) -> dict:
    return {
        stream_key(system, name): extract_stream(
            clients[system], con, name, run_id=run_id, full_refresh=full_refresh
        )
        for system in systems
        for name in STREAM_TABLES[system][0]
    }


def payloads(con, key: str) -> dict[str, dict]:
    if not con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw' "
        "AND table_name = ?",
        [key],
    ).fetchone()[0]:
        return {}
    rows = con.execute(f"SELECT id, payload, deleted FROM raw.{key}").fetchall()
    return {r[0]: (json.loads(r[1]), r[2]) for r in rows}


def state_records(state: Path, system: str, source: str) -> dict[str, dict]:
    path = state / system / f"{source}.jsonl"
    if not path.exists():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r.get("Id") or r["id"]: r for r in records}


@pytest.fixture
def con():
    with duckdb.connect(":memory:") as connection:
        yield connection


def test_full_extract_equals_the_state_files(sandbox, handwritten_state, con):
    clients = make_clients(sandbox)
    stats = extract(clients, con, run_id="r1", systems=("crm", "billing"))
    for system in ("crm", "billing"):
        for name, spec in STREAM_TABLES[system][0].items():
            key = stream_key(system, name)
            expected = state_records(handwritten_state, system, spec.source)
            stored = {k: v[0] for k, v in payloads(con, key).items()}
            assert stored == expected, key
            assert stats[key].new == len(expected) and stats[key].quarantined == 0
    # The hand-written state carries fields the stream tables do not know.
    assert stats["billing_credit_notes"].unknown_fields == ["memo"]


@pytest.mark.skipif(not HAS_ERP, reason="sandbox ERP not in this checkout")
def test_erp_rows_equal_the_suiteql_rows(sandbox, con):
    clients = make_clients(sandbox)
    stats = extract(clients, con, run_id="r1", systems=("erp",))
    erp = clients["erp"]
    for name, spec in STREAM_TABLES["erp"][0].items():
        where = f" WHERE type = '{spec.options['type']}'" if "type" in spec.options else ""
        body, _ = erp.suiteql(f"SELECT * FROM {spec.source}{where}")
        expected = {row["id"]: row for row in body["items"]}
        stored = {k: v[0] for k, v in payloads(con, stream_key("erp", name)).items()}
        assert stored == expected, name
        assert stats[stream_key("erp", name)].quarantined == 0


def test_second_run_reads_no_records_only_cursor_probes(sandbox, con):
    clients = make_clients(sandbox)
    extract(clients, con, run_id="r1")
    second = extract(clients, con, run_id="r2")
    for key, stats in second.items():
        if key in WHOLE:
            # No change column (currency, currencyrate) or no stamps here (subsidiary):
            # read whole, small, and nothing is stored again.
            assert stats.new == stats.changed == 0
            continue
        assert stats.fetched == 0, key
        assert stats.requests <= 2, key


def test_changes_made_through_the_apis_are_the_only_records_read(sandbox, con):
    clients = make_clients(sandbox)
    extract(clients, con, run_id="r1")
    created = httpx.post(
        f"{sandbox.billing}/v1/customers",
        data={"name": "Newco", "email": "ap@newco.example", "metadata[legal_entity]": "US01"},
        headers={"Authorization": "Bearer sk_test_e2e"},
    )
    assert created.status_code == 200, created.text
    account_id = next(iter(payloads(con, "crm_account")))
    token = httpx.post(
        f"{sandbox.crm}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
    ).json()["access_token"]
    patched = httpx.patch(
        f"{sandbox.crm}/services/data/v59.0/sobjects/Account/{account_id}",
        json={"Name": "Renamed Corp"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert patched.status_code == 204, patched.text
    if HAS_ERP:
        erp_customer = next(iter(payloads(con, "erp_customer").values()))[0]
        put = httpx.put(
            f"{sandbox.erp}/services/rest/record/v1/customer/eid:{erp_customer['externalid']}",
            json={"companyName": "Renamed ERP Co"},
            headers={"Authorization": "Bearer erp-token"},
        )
        assert put.status_code == 204, put.text

    second = extract(clients, con, run_id="r2")
    read = {key: s.fetched for key, s in second.items() if s.fetched and key not in WHOLE}
    expected = {"billing_customers": 1, "crm_account": 1}
    if HAS_ERP:
        expected["erp_customer"] = 1
    assert read == expected
    assert second["billing_customers"].new == 1
    assert second["crm_account"].changed == 1
    assert payloads(con, "crm_account")[account_id][0]["Name"] == "Renamed Corp"
    new_id = created.json()["id"]
    assert payloads(con, "billing_customers")[new_id][0] == created.json()


def test_faults_do_not_change_what_is_extracted(handwritten_state, tmp_path):
    calm_state = tmp_path / "calm"
    shutil.copytree(handwritten_state, calm_state)
    with running_sandbox(calm_state, seed=1) as urls, duckdb.connect(":memory:") as calm:
        extract(make_clients(urls), calm, run_id="calm")
        expected = {key: payloads(calm, key) for key in _all_keys()}

    faults = "error_rate=0.1,token_ttl_s=0.3,lost_reply_rate=0.05"
    with (
        running_sandbox(
            handwritten_state, seed=3, faults=faults, rate_limits=["billing=20/s", "crm=20/s"]
        ) as urls,
        duckdb.connect(":memory:") as noisy,
    ):
        clients = make_clients(urls)
        extract(clients, noisy, run_id="noisy")
        got = {key: payloads(noisy, key) for key in _all_keys()}
        retries = sum(c.stats.retries for c in clients.values())
    assert got == expected
    assert retries > 0


def _all_keys() -> list[str]:
    return [stream_key(system, name) for system in SYSTEMS for name in STREAM_TABLES[system][0]]


def test_crash_between_fetch_and_store_loses_and_doubles_nothing(sandbox, con, monkeypatch):
    clients = make_clients(sandbox)
    real_write = store.write_batch

    def crash(*args, **kwargs):
        raise OSError("simulated crash before the rows were stored")

    monkeypatch.setattr(store, "write_batch", crash)
    with pytest.raises(OSError):
        extract_stream(clients["billing"], con, "invoices", run_id="crashed")
    monkeypatch.setattr(store, "write_batch", real_write)
    assert store.read_cursor(con, "billing_invoices") is None
    first = extract_stream(clients["billing"], con, "invoices", run_id="rerun")
    again = extract_stream(clients["billing"], con, "invoices", run_id="again")
    total, distinct = con.execute(
        "SELECT count(*), count(DISTINCT id) FROM raw.billing_invoices"
    ).fetchone()
    assert total == distinct == first.new > 0
    assert again.fetched == 0


def test_dagster_assets_materialize_with_metadata_and_quarantine_check(sandbox, tmp_path):
    from revops_pipelines.defs.extract import extract_assets
    from revops_pipelines.defs.resources import BillingResource, CrmResource, DuckDBResource

    wanted = {dg.AssetKey(["raw", "billing_invoices"]), dg.AssetKey(["raw", "crm_account"])}
    assets = [a for a in extract_assets if a.key in wanted]
    path = tmp_path / "revops.duckdb"  # a file named raw.duckdb would clash with schema raw
    result = dg.materialize(
        assets,
        resources={
            "crm": CrmResource(url=sandbox.crm, client_id="a", client_secret="b"),
            "billing": BillingResource(url=sandbox.billing, api_key="sk_test_dg"),
            "duckdb": DuckDBResource(path=str(path)),
        },
    )
    assert result.success
    by_key = {
        m.asset_key: m.metadata for m in result.asset_materializations_for_node("raw__crm_account")
    }
    meta = by_key[dg.AssetKey(["raw", "crm_account"])]
    assert meta["dagster/row_count"].value == meta["rows_new"].value > 0
    checks = result.get_asset_check_evaluations()
    assert {c.check_name for c in checks} == {"quarantine_empty"}
    assert all(c.passed for c in checks)


def test_generated_scenario_extracts_completely_and_then_reads_nothing(tmp_path, con):
    from revops_pipelines.sandbox.generate import generate_state

    state = tmp_path / "generated"
    generate_state(state, customers=30, months=3, seed=11, drift_rate=0.1)
    with running_sandbox(state, seed=5) as urls:
        clients = make_clients(urls, workers=3)
        first = extract(clients, con, run_id="r1")
        for system in ("crm", "billing"):
            for name, spec in STREAM_TABLES[system][0].items():
                key = stream_key(system, name)
                expected = state_records(state, system, spec.source)
                assert {k: v[0] for k, v in payloads(con, key).items()} == expected, key
        for name, spec in STREAM_TABLES["erp"][0].items():
            where = f" WHERE type = '{spec.options['type']}'" if "type" in spec.options else ""
            body, _ = clients["erp"].suiteql(f"SELECT * FROM {spec.source}{where}")
            assert len(payloads(con, stream_key("erp", name))) == body["totalResults"], name
        assert first["billing_invoices"].new > 30
        second = extract(clients, con, run_id="r2")
    assert {k: s.fetched for k, s in second.items() if s.fetched and k not in WHOLE} == {}
