"""Write a sandbox state directory: a realistic world plus known, recorded drift.

The files follow SOURCES.md's state-directory contract; `truth.jsonl` names every
injected drift the way DATA_MODEL.md says findings name records, so a pipeline run
can be scored against it. Same seed, same bytes: no wall-clock time enters the data.
"""

from __future__ import annotations

import json
from pathlib import Path

from revops_pipelines.sandbox.generate_core import AS_OF, DAY, FILE_NAMES, NOW, World, iso_z
from revops_pipelines.sandbox.generate_drift import Truth, drift_count, inject_drift
from revops_pipelines.sandbox.generate_nulls import blank_optional_fields
from revops_pipelines.sandbox.generate_world import build_world

EVENT_WINDOW_DAYS = 30
API_VERSION = "2026-10-28"

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def generate_state(
    out: Path, *, customers: int, months: int, seed: int, drift_rate: float
) -> dict[str, int]:
    """Write the state directory and truth file under `out`; returns record counts per file."""
    if customers < 1 or months < 1:
        raise ValueError(f"customers ({customers}) and months ({months}) must be at least 1")
    if not 0.0 <= drift_rate <= 1.0:
        raise ValueError(f"drift_rate {drift_rate} must be between 0 and 1")
    world = build_world(customers=customers, months=months, seed=seed)
    truths = inject_drift(world, count=drift_count(customers=customers, drift_rate=drift_rate))
    blank_optional_fields(world)
    _add_events(world)

    out = Path(out)
    for system in ("crm", "billing", "erp"):
        (out / system).mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for name in FILE_NAMES:
        records = world.files[name].values()
        _write_lines(out / f"{name}.jsonl", records)
        counts[name] = len(records)
    _write_lines(out / "truth.jsonl", truths)
    counts["truth"] = len(truths)
    manifest = {
        "format": 1,
        "generated_at": iso_z(NOW),
        "as_of": AS_OF.isoformat(),
        "seed": seed,
        "customers": customers,
        "months": months,
        "drift_rate": drift_rate,
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return counts


def _write_lines(path: Path, records: object) -> None:
    text = "".join([_encode(r) + "\n" for r in records])  # type: ignore[attr-defined]
    path.write_text(text, encoding="utf-8", newline="\n")


def _add_events(world: World) -> None:
    """The last 30 days of customer.created and invoice.paid events, as Stripe keeps them."""
    since = NOW - EVENT_WINDOW_DAYS * DAY
    pending: list[tuple[int, str, dict]] = []
    for customer in world.files["billing/customers"].values():
        if customer["created"] >= since:
            pending.append((customer["created"], "customer.created", customer))
    for invoice in world.files["billing/invoices"].values():
        paid_at = invoice["status_transitions"]["paid_at"]
        if invoice["status"] == "paid" and paid_at is not None and paid_at >= since:
            pending.append((paid_at, "invoice.paid", invoice))
    pending.sort(key=lambda e: e[0])
    for created, kind, obj in pending:
        world.add(
            "billing/events",
            {
                "id": world.ids.stripe("evt"),
                "object": "event",
                "type": kind,
                "created": created,
                "api_version": API_VERSION,
                "livemode": False,
                "data": {"object": obj},
            },
        )


def read_truth(out: Path) -> list[Truth]:
    """The injected drifts of a generated state directory."""
    with (Path(out) / "truth.jsonl").open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
