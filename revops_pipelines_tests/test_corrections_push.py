"""The pusher over real HTTP against the sandbox: faults, races, dead letters, crashes."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx

from revops_pipelines.corrections.pusher import Pusher
from revops_pipelines.corrections.run import push_actions, replay, targets_from
from revops_pipelines.ledger import Ledger
from revops_pipelines.sandbox.serve import running_sandbox
from revops_pipelines.sandbox.state import Credentials, StateStore
from revops_pipelines_tests.corrections_support import (
    ACME_ACCOUNT,
    ACME_BILLING,
    erp_chain,
    external_id_counts,
    journal_writes,
    link_actions,
    plan_of,
    policy,
    settings_for,
)

FAST = {"max_attempts": 8}


def test_push_under_faults_converges_with_nothing_doubled(handwritten_state: Path, tmp_path):
    plan_id, actions = plan_of(erp_chain(12) + link_actions())
    rules = policy(erp={**FAST, "concurrency": 8}, billing=FAST, crm=FAST)
    faults = "error_rate=0.1,lost_reply_rate=0.1"
    with (
        running_sandbox(
            handwritten_state,
            faults=faults,
            seed=11,
            concurrency={"erp": 5},
            rate_limits={"erp": 400.0},
        ) as urls,
        Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger,
    ):
        settings = settings_for(urls, tmp_path)
        summaries = []
        for _ in range(4):  # a later run finishes what an earlier one left unknown
            summaries.append(push_actions(settings, rules, ledger, plan_id, actions))
            if summaries[-1].complete:
                break
        assert summaries[-1].complete, [s.line() for s in summaries]
        attempts = ledger.attempts()
    counts = external_id_counts(handwritten_state)
    for name in ("customer", "invoice", "customerpayment"):
        ours = {k: v for k, v in counts[name].items() if "_t" in k}
        assert len(ours) == 12 and set(ours.values()) == {1}, (name, ours)
    store = StateStore.load(handwritten_state)
    for invoice in store.collection("erp", "invoice"):
        if str(invoice.get("externalId", "")).startswith("in_t"):
            assert invoice["amountRemaining"] == 0.0, invoice
    assert (
        store.collection("billing", "customers").get(ACME_BILLING)["metadata"]["crm_account_id"]
        == ACME_ACCOUNT
    )
    assert (
        store.collection("crm", "Account").get(ACME_ACCOUNT)["Billing_Customer_Id__c"]
        == ACME_BILLING
    )
    # Every attempt is in the log, and each key ends applied once (sent or read back).
    keys = {a["idempotency_key"] for a in actions}
    assert {row["idempotency_key"] for row in attempts} == keys
    final = [row for row in attempts if row["status"] in ("applied", "verified")]
    assert sorted(row["idempotency_key"] for row in final) == sorted(keys)
    assert any(row["status"] in ("unknown", "retry") for row in attempts)


def test_two_racing_pushers_send_each_key_once(handwritten_state: Path, tmp_path, ledger_url):
    plan_id, actions = plan_of(erp_chain(15, prefix="r") + link_actions())
    rules = policy(erp={"concurrency": 4})
    summaries = []
    with running_sandbox(handwritten_state, concurrency={"erp": 10}) as urls:
        settings = settings_for(urls, tmp_path)

        def run() -> None:
            with Ledger(ledger_url) as ledger, targets_from(settings, rules) as targets:
                summaries.append(Pusher(ledger, targets, rules).push(plan_id, actions))

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # What one left waiting on the other's keys is finished by a later run.
        with Ledger(ledger_url) as ledger:
            summaries.append(push_actions(settings, rules, ledger, plan_id, actions))
            assert summaries[-1].complete, [s.line() for s in summaries]
            assert set(ledger.outcomes().values()) == {"applied"}
        writes = journal_writes(handwritten_state)
    expected = {a["external_id"] for a in actions}
    assert {key: writes[key] for key in expected} == dict.fromkeys(expected, 1)
    sent = sum(s.counts["applied"] for s in summaries)
    assert sent == len(actions)


def test_a_permanent_error_is_a_dead_letter_and_replays_with_the_same_key(
    handwritten_state: Path, tmp_path
):
    chain = erp_chain(1, prefix="d", amount=10.0)
    chain[2].payload["payment"] = 15.0
    chain[2].payload["apply"]["items"][0]["amount"] = 15.0
    plan_id, actions = plan_of(chain)
    rules = policy()
    with (
        running_sandbox(handwritten_state) as urls,
        Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger,
    ):
        settings = settings_for(urls, tmp_path)
        summary = push_actions(settings, rules, ledger, plan_id, actions)
        assert summary.counts["failed"] == 1 and summary.counts["applied"] == 2
        [letter] = ledger.dead_letters()
        assert letter["external_id"] == "inpay_d0" and letter["http_status"] == 400
        assert letter["error_code"] == "USER_ERROR"
        assert "exceeds its amount remaining" in letter["error_message"]
        # Pushing again does not resend a dead letter.
        assert push_actions(settings, rules, ledger, plan_id, actions).counts["failed"] == 1
        # The cause is fixed in the ERP (the invoice is raised to 15), then the letter replays.
        with httpx.Client(base_url=urls.erp, headers={"Authorization": "Bearer t"}) as erp:
            invoice = erp.get("/services/rest/record/v1/invoice/eid:in_d0").json()
            fixed = erp.patch(
                f"/services/rest/record/v1/invoice/{invoice['id']}",
                json={"total": 15.0, "subtotal": 15.0, "amountRemaining": 15.0},
            )
            assert fixed.status_code == 204
        replayed = replay(settings, rules, ledger, [letter["id"]])
        assert replayed.counts["applied"] == 1 and replayed.complete
        assert ledger.dead_letters() == []
        key = letter["idempotency_key"]
        assert [row["status"] for row in ledger.attempts(key)] == [
            "sent",
            "failed",
            "sent",
            "applied",
        ]
    payments = external_id_counts(handwritten_state)["customerpayment"]
    assert payments["inpay_d0"] == 1


def test_a_correction_is_refused_by_its_limits_before_it_is_sent() -> None:
    from revops_pipelines.corrections import limits

    key = "rvp-" + "a" * 40
    assert limits.check("billing", "cus_1", {"metadata": {"k": "v"}}, key) is None
    assert "50 keys" not in (limits.check("billing", "c", {"metadata": {}}, key) or "")
    too_many = {"metadata": {f"k{n}": "v" for n in range(51)}}
    assert "51 keys" in limits.check("billing", "c", too_many, key)
    assert "longer than 40" in limits.check("billing", "c", {"metadata": {"k" * 41: "v"}}, key)
    assert "longer than 500" in limits.check("billing", "c", {"metadata": {"k": "v" * 501}}, key)
    assert "1 to 255" in limits.check("billing", "c", {}, "k" * 256)
    assert "must be a string" in limits.check("billing", "c", {"name": {"a": 1}}, key)
    assert "letters, digits" in limits.check("erp", "in 1", {}, key)
    assert limits.check("crm", "001", {"Name": "x"}, key).startswith("a CRM record update")


def test_the_plan_payload_is_what_is_sent(handwritten_state: Path, tmp_path) -> None:
    plan_id, actions = plan_of(link_actions())
    assert json.loads(actions[0]["payload"]) == {"metadata": {"crm_account_id": ACME_ACCOUNT}}
    with (
        running_sandbox(handwritten_state) as urls,
        Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger,
    ):
        summary = push_actions(settings_for(urls, tmp_path), policy(), ledger, plan_id, actions)
    assert summary.complete and summary.by_target["crm"]["applied"] == 1


def test_crm_pushes_stop_at_the_allowed_share_of_the_daily_allowance(
    handwritten_state: Path, tmp_path
) -> None:
    from revops_pipelines.corrections.planner import Action
    from revops_pipelines.sandbox import crm
    from revops_pipelines.sandbox.faults import FaultMiddleware, FaultSpec
    from revops_pipelines.sandbox.serve import SandboxServer, build_apps
    from revops_pipelines.sandbox.state import Credentials

    store = StateStore.load(handwritten_state)
    apps = build_apps(store, credentials=Credentials(), faults={}, rate_limits={}, seed=1)
    # An org whose daily allowance is 10 calls; the policy lets corrections use 30 % of it.
    apps["crm"] = FaultMiddleware(
        crm.build_app(store, credentials=Credentials(), faults=FaultSpec(), api_limit=10),
        system_errors=crm.ERRORS,
        rate_limit=None,
        faults=FaultSpec(),
        seed=1,
    )
    accounts = [a["Id"] for a in store.collection("crm", "Account") if not a.get("IsDeleted")]
    actions = [
        Action(
            target="crm",
            operation="update",
            record_type="Account",
            external_id=account,
            target_id=account,
            payload={"Id": account, "BillingCity": "Oakland"},
            reason=f"exc-{account}",
        )
        for account in accounts
    ]
    assert len(actions) >= 4
    plan_id, rows = plan_of(actions)
    rules = policy(crm={"batch_size": 1, "max_allowance_share": 0.3})
    server = SandboxServer(apps)
    urls = server.start()
    try:
        with Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger:
            summary = push_actions(settings_for(urls, tmp_path), rules, ledger, plan_id, rows)
            outcomes = ledger.outcomes()
    finally:
        server.stop()
    # Each call counts; pushing stops once 3 of the 10 calls are used, the rest stays pending.
    assert summary.counts["applied"] >= 1 and summary.counts["deferred"] >= 1
    assert summary.counts["applied"] + summary.counts["deferred"] == len(actions)
    assert sum(outcome == "applied" for outcome in outcomes.values()) == summary.counts["applied"]


def test_an_attempt_is_in_the_log_before_its_request_goes_out(sandbox, tmp_path) -> None:
    plan_id, actions = plan_of(erp_chain(3, prefix="l"))
    keys = {a["external_id"]: a["idempotency_key"] for a in actions}
    logged_before: list[int] = []
    with (
        Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger,
        targets_from(settings_for(sandbox, tmp_path), policy()) as targets,
    ):
        writer = targets["erp"].writer
        request = writer.request

        def watched(method: str, url: str, **options):
            if method in ("PUT", "PATCH", "POST"):
                key = keys[url.rsplit("eid:", 1)[1]]
                sent = [row for row in ledger.attempts(key) if row["status"] == "sent"]
                logged_before.append(len(sent))
            return request(method, url, **options)

        writer.request = watched
        summary = Pusher(ledger, targets, policy()).push(plan_id, actions)
    assert summary.complete, summary.line()
    assert len(logged_before) == len(actions) and min(logged_before) == 1


def test_a_throttled_write_waits_what_retry_after_says(handwritten_state: Path, tmp_path):
    from revops_pipelines.sandbox.serve import SandboxServer, build_apps

    plan_id, actions = plan_of(erp_chain(3, prefix="w")[0::3])  # three customers
    store = StateStore.load(handwritten_state)
    # One ERP request a second: a write right after another is answered 429, Retry-After: 1.
    apps = build_apps(store, credentials=Credentials(), faults={}, rate_limits={"erp": 1.0}, seed=1)
    server = SandboxServer(apps)
    urls = server.start()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    rules = policy(erp={"concurrency": 1, "rate_per_s": 1000.0, "max_attempts": 4})
    try:
        with (
            Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger,
            targets_from(settings_for(urls, tmp_path), rules) as targets,
        ):
            summary = Pusher(ledger, targets, rules, sleep=sleep).push(plan_id, actions)
            throttled = [row for row in ledger.attempts() if row["http_status"] == 429]
    finally:
        server.stop()
    erp = apps["erp"].app  # the fault layer, inside the sandbox admin routes
    assert summary.complete, summary.line()
    assert erp.refused == len(throttled) == len(waits) >= len(actions) - 1
    # Each retry waited the header's second, not the backoff's fraction of one.
    assert waits == [1.0] * len(waits)
    assert erp.served == len(actions)
