"""Correction plans written by hand for pusher tests over the hand-written sandbox state."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from revops_pipelines.corrections.planner import Action, Plan, erp_upsert, finish, plan_rows
from revops_pipelines.corrections.policy import parse_policy
from revops_pipelines.corrections.run import as_action
from revops_pipelines.sandbox.journal import JOURNAL_NAME
from revops_pipelines.sandbox.state import StateStore
from revops_pipelines.settings import Settings

ACME_ACCOUNT = "001Hs00003AbCdEIAV"
ACME_BILLING = "cus_R1a2B3c4D5e6F7"


def erp_chain(count: int, *, prefix: str = "t", amount: float = 10.0) -> list[Action]:
    """`count` new ERP customers, each with one invoice and the payment that pays it."""
    actions: list[Action] = []
    for n in range(count):
        customer, invoice, payment = f"cus_{prefix}{n}", f"in_{prefix}{n}", f"inpay_{prefix}{n}"
        reason = f"exc-{customer}"
        actions += [
            erp_upsert(
                "customer",
                {
                    "externalId": customer,
                    "companyName": f"Pushed Co {prefix}{n}",
                    "email": f"ap{n}@pushed.example",
                    "subsidiary": {"id": "1"},
                    "currency": {"id": "1"},
                },
                reason=reason,
            ),
            erp_upsert(
                "invoice",
                {
                    "externalId": invoice,
                    "entity": {"externalId": customer},
                    "subsidiary": {"id": "1"},
                    "currency": {"id": "1"},
                    "subtotal": amount,
                    "taxTotal": 0.0,
                    "total": amount,
                    "item": {"items": [{"item": {"id": "77"}, "quantity": 1, "amount": amount}]},
                },
                reason=reason,
                requires=[("erp", "customer", customer)],
            ),
            erp_upsert(
                "customerpayment",
                {
                    "externalId": payment,
                    "customer": {"externalId": customer},
                    "currency": {"id": "1"},
                    "payment": amount,
                    "apply": {"items": [{"doc": {"externalId": invoice}, "amount": amount}]},
                },
                reason=reason,
                requires=[("erp", "invoice", invoice)],
            ),
        ]
    return actions


def link_actions() -> list[Action]:
    """A billing metadata update and a CRM field update through sObject Collections."""
    return [
        Action(
            target="billing",
            operation="update",
            record_type="customer",
            external_id=ACME_BILLING,
            target_id=ACME_BILLING,
            payload={"metadata": {"crm_account_id": ACME_ACCOUNT}},
            reason="exc-link",
        ),
        Action(
            target="crm",
            operation="update",
            record_type="Account",
            external_id=ACME_ACCOUNT,
            target_id=ACME_ACCOUNT,
            payload={"Id": ACME_ACCOUNT, "Billing_Customer_Id__c": ACME_BILLING},
            reason="exc-link",
        ),
    ]


def plan_of(actions: list[Action]) -> tuple[str, list[dict[str, Any]]]:
    actions = finish(actions)
    plan = Plan("p" + actions[0].idempotency_key[4:16], datetime.now(UTC), actions, [], {}, [])
    return plan.plan_id, [as_action(row) for row in plan_rows(plan)]


def policy(**targets: dict[str, Any]):
    """The shipped policy with some target limits replaced (fast retries for tests)."""
    import tomllib

    from revops_pipelines.corrections.policy import default_path

    raw = tomllib.loads(default_path().read_text())
    for target, values in targets.items():
        raw["targets"][target].update(values)
    return parse_policy(raw)


def settings_for(urls: Any, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        crm_url=urls.crm,
        billing_url=urls.billing,
        erp_url=urls.erp,
    )


def external_id_counts(state_dir: Path) -> dict[str, Counter]:
    """How many ERP records hold each external id, files and journal together."""
    store = StateStore.load(state_dir)
    return {
        name: Counter(
            str(r["externalId"]) for r in store.collection("erp", name) if r.get("externalId")
        )
        for name in ("customer", "invoice", "customerpayment")
    }


def journal_writes(state_dir: Path) -> Counter:
    """Write requests the sandbox applied, per external id, read from its journal."""
    counts: Counter = Counter()
    path = state_dir / JOURNAL_NAME
    if not path.exists():
        return counts
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        entry = json.loads(line)
        writes = entry.get("w") or []
        if writes:
            first = writes[0][2]
            counts[str(first.get("externalId") or first.get("Id") or first.get("id"))] += 1
    return counts
