"""Extraction end to end against the sandbox servers over real HTTP."""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
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
from revops_pipelines.raw.extract import STREAM_TABLES, StreamStats, extract_streams, stream_key
from revops_pipelines.sandbox.serve import running_sandbox
from revops_pipelines.settings import Settings

HAS_ERP = importlib.util.find_spec("revops_pipelines.sandbox.erp") is not None
SYSTEMS = ("crm", "billing", "erp") if HAS_ERP else ("crm", "billing")
FAST = {"rate_limit": 0, "backoff_initial": 0.02, "backoff_max": 0.5, "max_attempts": 8}


WHOLE = ("erp_currency", "erp_currency_rate", "erp_subsidiary")


def make_client(urls, system: str, **options) -> BaseClient:
    options = {**FAST, **options}
    if system == "crm":
        return CrmClient(urls.crm, client_id="test-client", client_secret="secret", **options)
    if system == "billing":
        return BillingClient(urls.billing, api_key="sk_test_e2e", **options)
    return ErpClient(urls.erp, token="erp-token", **options)


def make_clients(urls, **options) -> dict[str, BaseClient]:
    return {system: make_client(urls, system, **options) for system in SYSTEMS}


def extract(urls, con, *, run_id: str, systems=SYSTEMS, full_refresh=False, **options) -> dict:
    """Every stream of `systems` read at the same time, as the extract step reads them."""
    streams = [(system, name) for system in systems for name in STREAM_TABLES[system][0]]
    results = dict(
        extract_streams(
            lambda system: make_client(urls, system, **options),
            con,
            streams,
            run_id=run_id,
            full_refresh=full_refresh,
        )
    )
    failed = {key: error for key, error in results.items() if isinstance(error, Exception)}
    assert not failed, failed
    return results


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
    stats = extract(sandbox, con, run_id="r1", systems=("crm", "billing"))
    for system in ("crm", "billing"):
        for name, spec in STREAM_TABLES[system][0].items():
            key = stream_key(system, name)
            expected = state_records(handwritten_state, system, spec.source)
            stored = {k: v[0] for k, v in payloads(con, key).items()}
            assert stored == expected, key
            assert stats[key].new == len(expected) and stats[key].quarantined == 0
    # The hand-written state carries fields the stream tables do not know.
    assert stats["billing_credit_note"].unknown_fields == ["memo"]


@pytest.mark.skipif(not HAS_ERP, reason="sandbox ERP not in this checkout")
def test_erp_rows_equal_the_suiteql_rows(sandbox, con):
    stats = extract(sandbox, con, run_id="r1", systems=("erp",))
    erp = make_client(sandbox, "erp")
    for name, spec in STREAM_TABLES["erp"][0].items():
        where = f" WHERE type = '{spec.options['type']}'" if "type" in spec.options else ""
        body, _ = erp.suiteql(f"SELECT * FROM {spec.source}{where}")
        expected = {row["id"]: row for row in body["items"]}
        stored = {k: v[0] for k, v in payloads(con, stream_key("erp", name)).items()}
        assert stored == expected, name
        assert stats[stream_key("erp", name)].quarantined == 0


def test_second_run_reads_no_records_only_cursor_probes(sandbox, con):
    extract(sandbox, con, run_id="r1")
    second = extract(sandbox, con, run_id="r2")
    for key, stats in second.items():
        if key in WHOLE:
            # No change column (currency, currencyrate) or no stamps here (subsidiary):
            # read whole, small, and nothing is stored again.
            assert stats.new == stats.changed == 0
            continue
        assert stats.fetched == 0, key
        assert stats.requests <= 2, key


def test_changes_made_through_the_apis_are_the_only_records_read(sandbox, con):
    extract(sandbox, con, run_id="r1")
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

    second = extract(sandbox, con, run_id="r2")
    read = {key: s.fetched for key, s in second.items() if s.fetched and key not in WHOLE}
    expected = {"billing_customer": 1, "crm_account": 1}
    if HAS_ERP:
        expected["erp_customer"] = 1
    assert read == expected
    assert second["billing_customer"].new == 1
    assert second["crm_account"].changed == 1
    assert payloads(con, "crm_account")[account_id][0]["Name"] == "Renamed Corp"
    new_id = created.json()["id"]
    assert payloads(con, "billing_customer")[new_id][0] == created.json()


def test_faults_do_not_change_what_is_extracted(handwritten_state, tmp_path):
    calm_state = tmp_path / "calm"
    shutil.copytree(handwritten_state, calm_state)
    with running_sandbox(calm_state, seed=1) as urls, duckdb.connect(":memory:") as calm:
        extract(urls, calm, run_id="calm")
        expected = {key: payloads(calm, key) for key in _all_keys()}

    faults = "error_rate=0.1,token_ttl_s=0.3,lost_reply_rate=0.05"
    with (
        running_sandbox(
            handwritten_state, seed=3, faults=faults, rate_limits=["billing=20/s", "crm=20/s"]
        ) as urls,
        duckdb.connect(":memory:") as noisy,
    ):
        stats = extract(urls, noisy, run_id="noisy")
        got = {key: payloads(noisy, key) for key in _all_keys()}
        retries = sum(s.retries for s in stats.values())
    assert got == expected
    assert retries > 0


def _all_keys() -> list[str]:
    return [stream_key(system, name) for system in SYSTEMS for name in STREAM_TABLES[system][0]]


def test_two_streams_of_one_system_read_together_stay_within_its_rate_limit(handwritten_state, con):
    from revops_pipelines.sandbox.faults import parse_faults
    from revops_pipelines.sandbox.serve import SandboxServer, build_apps
    from revops_pipelines.sandbox.state import Credentials, StateStore

    rate = 3.0
    apps = build_apps(
        StateStore.load(handwritten_state),
        credentials=Credentials(),
        faults=parse_faults(None),
        rate_limits={"billing": rate},
        seed=1,
    )
    server = SandboxServer(apps)
    urls = server.start()
    try:
        started = time.monotonic()
        # Each stream has its own client, as in the extract step; both at the API's rate.
        results = dict(
            extract_streams(
                lambda system: make_client(urls, system, rate_limit=rate),
                con,
                [("billing", "invoice"), ("billing", "customer")],
                run_id="paced",
            )
        )
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    billing = apps["billing"].app  # the fault layer, inside the sandbox admin routes
    assert all(isinstance(s, StreamStats) and s.new > 0 for s in results.values()), results
    assert billing.served == sum(s.requests for s in results.values()) > 2 * rate
    # Counted at the sandbox: nothing refused, and no more than its bucket allows.
    assert billing.refused == 0
    assert billing.served <= rate + rate * elapsed


def test_streams_of_one_system_read_together_log_in_once(handwritten_state, con):
    from revops_pipelines.sandbox.faults import parse_faults
    from revops_pipelines.sandbox.serve import SandboxServer, build_apps
    from revops_pipelines.sandbox.state import Credentials, StateStore

    apps = build_apps(
        StateStore.load(handwritten_state),
        credentials=Credentials(),
        faults=parse_faults(None),
        rate_limits={},
        seed=1,
    )
    crm, logins = apps["crm"], []

    async def counting(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/services/oauth2/token":
            logins.append(scope["method"])
        await crm(scope, receive, send)

    server = SandboxServer({**apps, "crm": counting})
    urls = server.start()
    try:
        streams = [("crm", name) for name in STREAM_TABLES["crm"][0]]
        # Each stream has its own client, as in the extract step.
        results = dict(
            extract_streams(lambda system: make_client(urls, system), con, streams, run_id="one")
        )
    finally:
        server.stop()
    assert all(isinstance(s, StreamStats) and s.new > 0 for s in results.values()), results
    assert len(results) > 1 and logins == ["POST"]


@pytest.mark.parametrize("system", SYSTEMS)
def test_crash_between_fetch_and_store_loses_and_doubles_nothing(system, sandbox, con, monkeypatch):
    real_write = store.write_batch
    keys = [stream_key(system, name) for name in STREAM_TABLES[system][0]]

    def crash_on_cursor(*args, **kwargs):
        # Batches without the cursor are stored; the one that would move it never is.
        if kwargs.get("cursor") is not None:
            raise OSError("simulated crash before the rows were stored")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(store, "write_batch", crash_on_cursor)
    streams = [(system, name) for name in STREAM_TABLES[system][0]]
    crashed = dict(
        extract_streams(lambda s: make_client(sandbox, s), con, streams, run_id="crashed")
    )
    assert all(isinstance(outcome, OSError) for outcome in crashed.values()), crashed
    monkeypatch.setattr(store, "write_batch", real_write)
    assert all(store.read_cursor(con, key) is None for key in keys)

    first = extract(sandbox, con, run_id="rerun", systems=(system,))
    again = extract(sandbox, con, run_id="again", systems=(system,))
    clean = duckdb.connect(":memory:")
    extract(sandbox, clean, run_id="clean", systems=(system,))
    for key in keys:
        total, distinct = con.execute(
            f"SELECT count(*), count(DISTINCT id) FROM raw.{key}"
        ).fetchone()
        assert total == distinct, key
        assert payloads(con, key) == payloads(clean, key), key
        assert store.read_cursor(con, key) is not None, key
        if key not in WHOLE:
            assert again[key].fetched == 0, key
    assert sum(first[key].fetched for key in keys) > 0


def _resources(urls, path: Path, **settings) -> dict:
    from revops_pipelines.defs.resources import RevopsSettings, build_resources

    return build_resources(
        RevopsSettings.of(
            Settings(
                **{
                    "crm_url": urls.crm,
                    "billing_url": urls.billing,
                    "erp_url": urls.erp,
                    "duckdb_path": path,
                    **settings,
                }
            )
        )
    )


def test_dagster_assets_materialize_with_metadata_and_quarantine_check(sandbox, tmp_path):
    from revops_pipelines.defs.extract import extract as extract_step

    wanted = {dg.AssetKey(["raw", "billing_invoice"]), dg.AssetKey(["raw", "crm_account"])}
    path = tmp_path / "revops.duckdb"  # a file named raw.duckdb would clash with schema raw
    result = dg.materialize(
        [extract_step], selection=list(wanted), resources=_resources(sandbox, path)
    )
    assert result.success
    by_key = {m.asset_key: m.metadata for m in result.asset_materializations_for_node("extract")}
    assert set(by_key) == wanted
    meta = by_key[dg.AssetKey(["raw", "crm_account"])]
    assert meta["dagster/row_count"].value == meta["rows_new"].value > 0
    checks = result.get_asset_check_evaluations()
    assert {(c.asset_key, c.check_name) for c in checks} == {
        (key, "quarantine_empty") for key in wanted
    }
    assert all(c.passed for c in checks)


def test_a_failing_stream_fails_the_step_after_the_others_are_stored(sandbox, tmp_path):
    from revops_pipelines.defs.extract import extract as extract_step

    # Every ERP request is answered 404, which no retry mends.
    resources = _resources(sandbox, tmp_path / "revops.duckdb", erp_url=f"{sandbox.erp}/nowhere")
    wanted = [dg.AssetKey(["raw", "erp_customer"]), dg.AssetKey(["raw", "billing_customer"])]
    result = dg.materialize(
        [extract_step], selection=wanted, resources=resources, raise_on_error=False
    )
    assert not result.success
    stored = {m.asset_key for m in result.asset_materializations_for_node("extract")}
    assert stored == {dg.AssetKey(["raw", "billing_customer"])}
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "erp_customer: erp 404" in failure.event_specific_data.error.to_string()


def test_generated_scenario_extracts_completely_and_then_reads_nothing(tmp_path, con):
    from revops_pipelines.sandbox.generate import generate_state

    state = tmp_path / "generated"
    generate_state(state, customers=30, months=3, seed=11, drift_rate=0.1)
    with running_sandbox(state, seed=5) as urls:
        clients = make_clients(urls)
        first = extract(urls, con, run_id="r1", workers=3)
        for system in ("crm", "billing"):
            for name, spec in STREAM_TABLES[system][0].items():
                key = stream_key(system, name)
                expected = state_records(state, system, spec.source)
                assert {k: v[0] for k, v in payloads(con, key).items()} == expected, key
        for name, spec in STREAM_TABLES["erp"][0].items():
            where = f" WHERE type = '{spec.options['type']}'" if "type" in spec.options else ""
            body, _ = clients["erp"].suiteql(f"SELECT * FROM {spec.source}{where}")
            assert len(payloads(con, stream_key("erp", name))) == body["totalResults"], name
        assert first["billing_invoice"].new > 30
        second = extract(urls, con, run_id="r2", workers=3)
    assert {k: s.fetched for k, s in second.items() if s.fetched and k not in WHOLE} == {}
