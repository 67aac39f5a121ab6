"""Webhooks that never arrive: the hourly incremental run still finds every change."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import httpx

from revops_pipelines.landing_zone.serve import running_receiver
from revops_pipelines.raw.extract import STREAM_TABLES
from revops_pipelines.raw.refresh import webhook_coverage
from revops_pipelines.sandbox.faults import FaultSpec
from revops_pipelines.sandbox.serve import running_sandbox
from revops_pipelines.sandbox.webhooks import WebhookSecrets
from revops_pipelines.settings import Settings
from revops_pipelines_tests.test_extract_sandbox import extract, make_clients, payloads
from revops_pipelines_tests.test_landing_zone import ledger_url

SECRETS = Settings().webhook_secrets()
CHANGES = ["new-invoice", "win-opportunity", "pay-invoice", "drift-erp-invoice"] * 3


def test_with_30_percent_of_deliveries_dropped_polling_finds_every_change(
    handwritten_state, tmp_path
):
    landing_dir = tmp_path / "landing"
    drops = {source: FaultSpec(webhook_drop_rate=0.3) for source in SECRETS}
    with (
        running_receiver(
            landing_dir, secrets=SECRETS, ledger_url=ledger_url(landing_dir)
        ) as receiver,
        running_sandbox(
            handwritten_state,
            deliver_to=receiver.url,
            webhook_secrets=WebhookSecrets(**SECRETS),
            faults=drops,
            seed=21,
        ) as urls,
        duckdb.connect(":memory:") as con,
    ):
        clients = make_clients(urls)
        extract(urls, con, run_id="full")
        since = datetime.now(UTC)
        touched = []
        for name in CHANGES:
            answer = httpx.post(f"{urls.billing}/_sandbox/changes/{name}")
            if answer.status_code == 409:  # e.g. no open invoice left to pay
                continue
            touched += answer.json()["touched"]
        assert urls.deliverer.wait_idle(20)
        dropped = urls.deliverer.stats["dropped"]
        assert dropped > 0 and sum(receiver.stats.accepted.values()) > 0

        extract(urls, con, run_id="hourly")

        keys = {
            ("crm", "Opportunity"): "crm_opportunity",
            ("billing", "invoice"): "billing_invoice",
            ("billing", "invoice_payment"): "billing_invoice_payment",
            ("erp", "invoice"): "erp_invoice",
        }
        auth = {"Authorization": "Bearer sk_test_e2e"}
        for record in touched:
            key = keys[(record["system"], record["object"])]
            stored, deleted = payloads(con, key)[record["id"]]
            assert not deleted
            system, stream = key.split("_", 1)
            spec = STREAM_TABLES[system][0][stream]
            if system == "billing":
                path = f"{urls.billing}/v1/{spec.source}/{record['id']}"
                current = httpx.get(path, headers=auth).json()
            else:
                pages = clients[system].fetch_notified(spec, [record["id"]])
                (current,) = [change.record for page in pages for change in page.changes]
            assert stored == current, record
        coverage = webhook_coverage(con, landing_dir, since=since)

    # Every change is seen once per system, though some of their webhooks never came.
    for system, counts in coverage.items():
        assert counts["changed"] == len({r["id"] for r in touched if r["system"] == system})
    assert sum(c["only_polled"] for c in coverage.values()) >= 1
    assert sum(c["named_by_webhooks"] for c in coverage.values()) >= 1
