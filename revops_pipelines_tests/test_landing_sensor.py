"""Landing-zone sensor and fetch-on-notify: batches, cursor, restarts, late and repeated events."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest

from revops_pipelines.definitions import definitions
from revops_pipelines.defs.corrections import PLAN_TAG, PUSH_KEY, WROTE_STREAMS
from revops_pipelines.defs.landing import BATCH_TAG, REVERIFY_TAG, build_landing_sensor
from revops_pipelines.defs.resources import RevopsSettings, build_resources
from revops_pipelines.landing_zone.files import list_events, write_event
from revops_pipelines.landing_zone.notices import pending_events, read_notice
from revops_pipelines.landing_zone.serve import running_receiver
from revops_pipelines.raw.extract import STREAM_TABLES, extract_stream, stream_key
from revops_pipelines.raw.refresh import notified_for, streams_named
from revops_pipelines.sandbox.faults import FaultSpec
from revops_pipelines.sandbox.serve import running_sandbox
from revops_pipelines.sandbox.webhooks import WebhookSecrets
from revops_pipelines.settings import Settings
from revops_pipelines_tests.test_extract_sandbox import make_clients, payloads
from revops_pipelines_tests.test_landing_zone import ledger_url

SECRETS = Settings().webhook_secrets()
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def resources_for(urls, **settings) -> dict:
    """The code location's resources over the sandbox at `urls`."""
    return build_resources(
        RevopsSettings.of(
            Settings(crm_url=urls.crm, billing_url=urls.billing, erp_url=urls.erp, **settings)
        )
    )


def crm_event(record_id: str, obj: str = "Opportunity") -> bytes:
    body = {"type": "record.updated", "timestamp": "x", "data": {"object": obj, "id": record_id}}
    return json.dumps(body).encode()


def billing_event(event_id: str, obj: str, record_id: str, created: int = 1) -> bytes:
    body = {
        "id": event_id,
        "object": "event",
        "type": f"{obj}.updated",
        "created": created,
        "data": {"object": {"id": record_id, "object": obj}},
    }
    return json.dumps(body).encode()


def land(landing_dir: Path, source: str, event_id: str, body: bytes, *, mtime_s: float) -> Path:
    path = write_event(landing_dir, source, event_id, body, received=NOW)
    os.utime(path, ns=(int(mtime_s * 1e9), int(mtime_s * 1e9)))
    return path


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return definitions()


def evaluate(
    sensor, defs, cursor: str | None, landing_dir: Path, *, runs: Sequence[dg.DagsterRun] = ()
) -> dg.SensorResult:
    settings = RevopsSettings.of(Settings(landing_dir=landing_dir))
    with dg.DagsterInstance.ephemeral() as instance:
        for run in runs:
            instance.add_run(run)
        context = dg.build_sensor_context(
            cursor=cursor, instance=instance, definitions=defs, resources={"settings": settings}
        )
        return sensor(context)


def test_events_wait_while_a_push_runs_and_are_read_after_it(tmp_path, defs):
    land(tmp_path, "crm", "msg_0", crm_event("006X0"), mtime_s=NOW.timestamp())
    sensor = build_landing_sensor()
    pushing = dg.DagsterRun(job_name="push_corrections", status=dg.DagsterRunStatus.STARTED)
    waiting = evaluate(sensor, defs, None, tmp_path, runs=[pushing])
    assert waiting.run_requests == [] and waiting.cursor is None
    assert "push_corrections" in waiting.skip_reason.skip_message
    pushed = dg.DagsterRun(job_name="push_corrections", status=dg.DagsterRunStatus.SUCCESS)
    after = evaluate(sensor, defs, waiting.cursor, tmp_path, runs=[pushed])
    assert len(after.run_requests) == 1 and after.cursor is not None


def test_events_wait_for_the_push_of_a_new_plan_for_a_while(tmp_path, defs):
    land(tmp_path, "crm", "msg_0", crm_event("006X0"), mtime_s=NOW.timestamp())
    settings = RevopsSettings.of(Settings(landing_dir=tmp_path))
    plan = dg.AssetKey(["corrections", "correction_plan"])

    def look(sensor, instance) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=instance, definitions=defs, resources={"settings": settings}
        )
        return sensor(context)

    with dg.DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(plan, metadata={"plan_id": "p1", "pending": 2})
        )
        waiting = look(build_landing_sensor(push_wait_s=60), instance)
        assert waiting.run_requests == [] and "push" in waiting.skip_reason.skip_message
        # Not for ever: a plan older than the wait (its push sensor may be stopped) holds
        # nothing back, and neither does one whose push has been launched.
        assert len(look(build_landing_sensor(push_wait_s=0), instance).run_requests) == 1
        failed = dg.DagsterRunStatus.FAILURE  # e.g. over the cap
        instance.add_run(
            dg.DagsterRun(job_name="push_corrections", tags={PLAN_TAG: "p1"}, status=failed)
        )
        assert len(look(build_landing_sensor(push_wait_s=60), instance).run_requests) == 1


def test_a_push_is_re_verified_in_the_same_run_as_the_webhooks_it_caused(tmp_path, defs):
    """The streams a push wrote are read by their change cursors in the refresh that takes
    in the landed events; streams only the events name are fetched by what they name."""
    base = NOW.timestamp()
    land(tmp_path, "erp", "msg_inv", crm_event("5678", "invoice"), mtime_s=base)
    land(tmp_path, "crm", "msg_opp", crm_event("006X0"), mtime_s=base + 1)
    sensor = build_landing_sensor()
    settings = RevopsSettings.of(Settings(landing_dir=tmp_path))
    with dg.DagsterInstance.ephemeral() as instance:

        def look(cursor: str | None) -> dg.SensorResult:
            return sensor(
                dg.build_sensor_context(
                    cursor=cursor,
                    instance=instance,
                    definitions=defs,
                    resources={"settings": settings},
                )
            )

        for plan_id in ("plan_a", "plan_b"):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    PUSH_KEY,
                    metadata={
                        "plan_id": plan_id,
                        WROTE_STREAMS: ["erp_invoice", "billing_customer"],
                    },
                )
            )
        first = look(None)
        [request] = first.run_requests
        assert request.tags[REVERIFY_TAG] == "plan_a,plan_b"
        notified = request.run_config["ops"]["extract"]["config"]["notified_files"]
        # The ERP invoice's stream is read by its cursor (it takes in the event); its lines,
        # which have no change column, and the CRM opportunity by what the events name.
        assert set(notified) == {
            "crm_opportunity",
            "erp_previous_transaction_link",
            "erp_transaction_line",
        }
        selected = {key.to_user_string() for key in request.asset_selection}
        assert {"raw/erp_invoice", "raw/billing_customer", "raw/crm_opportunity"} <= selected
        assert "raw/billing_invoice" not in selected

        # Nothing twice; a later push alone is re-verified alone.
        assert look(first.cursor).run_requests == []
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                PUSH_KEY, metadata={"plan_id": "plan_c", WROTE_STREAMS: ["crm_account"]}
            )
        )
        later = look(first.cursor)
        [alone] = later.run_requests
        assert alone.tags[REVERIFY_TAG] == "plan_c" and BATCH_TAG not in alone.tags
        assert alone.run_config["ops"]["extract"]["config"]["notified_files"] == {}
        assert "raw/crm_account" in {key.to_user_string() for key in alone.asset_selection}
        assert alone.run_key != request.run_key
        assert look(later.cursor).run_requests == []


def test_pending_events_cursor_only_moves_by_what_was_returned(tmp_path):
    base = NOW.timestamp()
    land(tmp_path, "crm", "msg_b", crm_event("006A"), mtime_s=base)
    land(tmp_path, "crm", "msg_a", crm_event("006B"), mtime_s=base + 1)
    first, cursor = pending_events(tmp_path, None)
    assert [e.event_id for e in first] == ["msg_b", "msg_a"]
    again, same = pending_events(tmp_path, cursor)
    assert again == [] and same == cursor
    # A file that shows up late with an older stamp (written before it was linked) still counts.
    land(tmp_path, "erp", "msg_late", crm_event("77", "invoice"), mtime_s=base - 5)
    late, cursor = pending_events(tmp_path, cursor)
    assert [e.event_id for e in late] == ["msg_late"]
    assert pending_events(tmp_path, cursor)[0] == []


def test_sensor_batches_new_files_and_never_repeats_them(tmp_path, defs):
    base = NOW.timestamp()
    for number in range(5):
        land(tmp_path, "crm", f"msg_{number}", crm_event(f"006X{number}"), mtime_s=base + number)
    sensor = build_landing_sensor(minimum_interval_seconds=5, max_batch_files=2)
    assert sensor.minimum_interval_seconds == 5

    result = evaluate(sensor, defs, None, tmp_path)
    assert len(result.run_requests) == 3
    assert len({r.run_key for r in result.run_requests}) == 3
    first = result.run_requests[0]
    notified = first.run_config["ops"]["extract"]["config"]["notified_files"]
    assert [Path(f).name for f in notified["crm_opportunity"]] == ["msg_0.json", "msg_1.json"]
    assert set(notified) == {"crm_opportunity"}
    selected = {key.to_user_string() for key in first.asset_selection}
    assert "raw/crm_opportunity" in selected and "reconciliation/report" in selected
    assert "raw/billing_invoice" not in selected
    # The plan is refreshed with its findings; the cap that gates the push is not checked.
    assert "corrections/correction_plan" in selected
    checks = {key.name for key in first.asset_check_keys}
    assert "no_critical_open" in checks and "blast_radius" not in checks

    # A restarted sensor starts from the stored cursor: nothing is requested twice.
    restarted = evaluate(sensor, defs, result.cursor, tmp_path)
    assert restarted.run_requests == [] and restarted.cursor == result.cursor
    land(tmp_path, "billing", "evt_new", billing_event("evt_new", "invoice", "in_1"), mtime_s=base)
    later = evaluate(sensor, defs, result.cursor, tmp_path)
    assert [
        list(r.run_config["ops"]["extract"]["config"]["notified_files"]) for r in later.run_requests
    ] == [["billing_invoice"]]
    # The same batch gives the same run key: Dagster's backstop against doubles.
    assert (
        later.run_requests[0].run_key
        == evaluate(sensor, defs, result.cursor, tmp_path).run_requests[0].run_key
    )


def test_erp_transactions_bring_their_lines_and_unknown_objects_are_skipped(tmp_path, defs):
    base = NOW.timestamp()
    land(tmp_path, "erp", "msg_inv", crm_event("5678", "invoice"), mtime_s=base)
    notices = [read_notice(e.path, e.source) for e in list_events(tmp_path)]
    assert sorted(streams_named(notices)) == [
        "erp_invoice",
        "erp_previous_transaction_link",
        "erp_transaction_line",
    ]
    other = tmp_path / "other"
    land(other, "crm", "msg_task", crm_event("00T1", "Task"), mtime_s=base)
    result = evaluate(build_landing_sensor(), defs, None, other)
    assert result.run_requests == [] and "name no record" in result.skip_reason.skip_message
    assert json.loads(result.cursor)["seen"] == [f"crm/{NOW:%Y-%m-%d}/msg_task.json"]


def _refresh(clients, con, landing_dir: Path, *, order: random.Random) -> None:
    """What a run of the sensor's requests does to raw, in an arbitrary order of the files."""
    events = list_events(landing_dir)
    order.shuffle(events)
    notices = [n for e in events if (n := read_notice(e.path, e.source))]
    notices = notices + notices[: len(notices) // 2]  # repeats
    for key, named in streams_named(notices).items():
        system = named[0].source
        stream = next(n for n in STREAM_TABLES[system][0] if stream_key(system, n) == key)
        extract_stream(
            clients[system], con, stream, run_id="notify", notified=notified_for(system, named)
        )


def test_repeated_and_out_of_order_events_leave_raw_equal_to_the_api(handwritten_state, tmp_path):
    landing_dir = tmp_path / "landing"
    faults = {s: FaultSpec(webhook_duplicate_rate=0.5, webhook_reorder_rate=0.5) for s in SECRETS}
    with (
        running_receiver(
            landing_dir, secrets=SECRETS, ledger_url=ledger_url(landing_dir)
        ) as receiver,
        running_sandbox(
            handwritten_state,
            deliver_to=receiver.url,
            webhook_secrets=WebhookSecrets(**SECRETS),
            faults=faults,
            seed=9,
        ) as urls,
        duckdb.connect(":memory:") as con,
    ):
        clients = make_clients(urls)
        auth = {"Authorization": "Bearer sk_test_e2e"}
        for email in ("a@acme.example", "b@acme.example", "c@acme.example"):
            httpx.post(
                f"{urls.billing}/v1/customers/cus_R1a2B3c4D5e6F7",
                data={"email": email},
                headers=auth,
            ).raise_for_status()
        for name in ("new-invoice", "pay-invoice", "win-opportunity", "drift-erp-invoice"):
            httpx.post(f"{urls.billing}/_sandbox/changes/{name}").raise_for_status()
        assert urls.deliverer.wait_idle(20)
        assert sum(receiver.stats.duplicates.values()) > 0
        _refresh(clients, con, landing_dir, order=random.Random(3))

        customer = httpx.get(f"{urls.billing}/v1/customers/cus_R1a2B3c4D5e6F7", headers=auth)
        stored = payloads(con, "billing_customer")
        assert stored["cus_R1a2B3c4D5e6F7"][0] == customer.json()
        assert stored["cus_R1a2B3c4D5e6F7"][0]["email"] == "c@acme.example"
        for key in ("billing_invoice", "billing_invoice_payment", "crm_opportunity"):
            assert payloads(con, key), key
        for invoice_id, (payload, deleted) in payloads(con, "billing_invoice").items():
            api = httpx.get(f"{urls.billing}/v1/invoices/{invoice_id}", headers=auth).json()
            assert payload == api and not deleted
        (opportunity_id,) = payloads(con, "crm_opportunity")
        crm_now = clients["crm"].fetch_notified(
            STREAM_TABLES["crm"][0]["opportunity"], [opportunity_id]
        )
        assert [c.record for page in crm_now for c in page.changes] == [
            payloads(con, "crm_opportunity")[opportunity_id][0]
        ]
        (erp_invoice,) = payloads(con, "erp_invoice")
        body, _ = clients["erp"].suiteql(f"SELECT * FROM transaction WHERE id = '{erp_invoice}'")
        assert payloads(con, "erp_invoice")[erp_invoice][0] == body["items"][0]
        # The invoice's lines came with it, and no stream's change cursor moved.
        assert payloads(con, "erp_transaction_line")
        assert con.execute("SELECT count(*) FROM raw._cursors").fetchone()[0] == 0


def test_a_sensor_run_request_materializes_the_named_records(handwritten_state, tmp_path, defs):
    from revops_pipelines.defs.extract import extract

    landing_dir = tmp_path / "landing"
    with (
        running_receiver(
            landing_dir, secrets=SECRETS, ledger_url=ledger_url(landing_dir)
        ) as receiver,
        running_sandbox(
            handwritten_state, deliver_to=receiver.url, webhook_secrets=WebhookSecrets(**SECRETS)
        ) as urls,
    ):
        touched = httpx.post(f"{urls.billing}/_sandbox/changes/new-invoice").json()["touched"]
        assert urls.deliverer.wait_idle(20)
        (request,) = evaluate(build_landing_sensor(), defs, None, landing_dir).run_requests
        streams = set(request.run_config["ops"]["extract"]["config"]["notified_files"])
        raw = [key for key in request.asset_selection if key.path[0] == "raw"]
        path = tmp_path / "revops.duckdb"
        result = dg.materialize(
            [extract],
            selection=raw,
            run_config=request.run_config,
            resources=resources_for(urls, duckdb_path=path),
        )
    assert result.success and streams == {"billing_invoice"}
    assert raw == [dg.AssetKey(["raw", "billing_invoice"])]
    with duckdb.connect(str(path), read_only=True) as con:
        assert list(payloads(con, "billing_invoice")) == [touched[0]["id"]]
        assert con.execute("SELECT count(*) FROM raw._cursors").fetchone()[0] == 0


@pytest.mark.slow
def test_a_webhook_run_refreshes_models_and_finds_the_new_drift(handwritten_state, tmp_path, defs):
    landing_dir = tmp_path / "landing"
    path = tmp_path / "revops.duckdb"
    with (
        running_receiver(
            landing_dir, secrets=SECRETS, ledger_url=ledger_url(landing_dir)
        ) as receiver,
        running_sandbox(
            handwritten_state, deliver_to=receiver.url, webhook_secrets=WebhookSecrets(**SECRETS)
        ) as urls,
    ):
        resources = resources_for(
            urls,
            data_dir=tmp_path / "data",
            output_dir=tmp_path / "out",
            ledger_url=f"sqlite:///{tmp_path / 'ledger.sqlite'}",
            duckdb_path=path,
        )
        # Everything but the push of corrections, which only its own job runs.
        push = dg.AssetKey(["corrections", "push"])
        assets = [a for a in defs.assets if push not in a.keys]
        assert dg.materialize(assets, resources=resources).success

        def open_mismatches() -> set[str]:
            with duckdb.connect(str(path), read_only=True) as con:
                rows = con.execute(
                    "SELECT erp_id FROM reconciliation.drift_exceptions "
                    "WHERE drift_type = 'invoice_amount_mismatch'"
                ).fetchall()
            return {row[0] for row in rows}

        before = open_mismatches()
        (touched,) = httpx.post(f"{urls.billing}/_sandbox/changes/drift-erp-invoice").json()[
            "touched"
        ]
        assert urls.deliverer.wait_idle(20)
        (request,) = evaluate(build_landing_sensor(), defs, None, landing_dir).run_requests
        result = dg.materialize(
            assets,
            selection=request.asset_selection,
            run_config=request.run_config,
            resources=resources,
        )
    assert result.success
    assert touched["id"] not in before and touched["id"] in open_mismatches()
    refreshed = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"raw/erp_invoice", "canonical/invoice", "reconciliation/drift_exceptions"} <= refreshed
    assert "raw/billing_invoice" not in refreshed
