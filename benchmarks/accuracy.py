"""Findings against the generator's truth: recall and precision per drift code.

For each seed and size: generate a state directory, load it as raw tables, run the staging,
canonical and reconciliation models, and score `reconciliation.findings` against truth.jsonl
(a finding matches a truth line when the codes are equal and every id, field and expected value
the truth line sets is equal in the finding; docs/DATA_MODEL.md).

    python benchmarks/accuracy.py --seeds 1 2 3 --customers 100 300
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import duckdb

from revops_pipelines.reconciliation.run import now_for, reconciliation_vars
from revops_pipelines.sandbox.generate import generate_state
from revops_pipelines.sandbox.raw_tables import load_state_dir
from revops_pipelines.sqlmodels import load_models, run_models

MATCH_COLUMNS = ("crm_id", "billing_id", "erp_id", "field", "expected")


def matches(finding: dict, truth: dict) -> bool:
    if finding["drift_type"] != truth["drift_type"]:
        return False
    return all(
        str(finding.get(c)) == str(truth[c]) for c in MATCH_COLUMNS if truth.get(c) is not None
    )


def score(findings: list[dict], truth: list[dict]) -> dict[str, Counter]:
    counts: dict[str, Counter] = {}
    for t in truth:
        c = counts.setdefault(t["drift_type"], Counter())
        c["truth"] += 1
        c["found"] += any(matches(f, t) for f in findings)
    for f in findings:
        c = counts.setdefault(f["drift_type"], Counter())
        c["findings"] += 1
        c["correct"] += any(matches(f, t) for t in truth)
    return counts


def run_one(state: Path) -> list[dict]:
    manifest = json.loads((state / "manifest.json").read_text())
    con = duckdb.connect()
    load_state_dir(con, state)
    run_models(con, load_models(), vars=reconciliation_vars(now=now_for(manifest.get("as_of"))))
    cursor = con.execute("SELECT * FROM reconciliation.findings")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--customers", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--drift-rate", type=float, default=0.05)
    args = parser.parse_args()

    total: dict[str, Counter] = {}
    for size in args.customers:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as tmp:
                state = Path(tmp) / "state"
                started = time.perf_counter()
                generate_state(
                    state,
                    customers=size,
                    months=args.months,
                    seed=seed,
                    drift_rate=args.drift_rate,
                )
                truth = [
                    json.loads(line)
                    for line in (state / "truth.jsonl").read_text().splitlines()
                    if line.strip()
                ]
                findings = run_one(state)
                result = score(findings, truth)
            found = sum(c["found"] for c in result.values())
            correct = sum(c["correct"] for c in result.values())
            print(
                f"customers={size} seed={seed}: truth {len(truth)}, findings {len(findings)}, "
                f"recall {found / max(len(truth), 1):.3f}, "
                f"precision {correct / max(len(findings), 1):.3f} "
                f"({time.perf_counter() - started:.1f} s)"
            )
            for code, c in result.items():
                total.setdefault(code, Counter()).update(c)

    print(f"\n{'code':<42} {'truth':>6} {'recall':>7} {'findings':>9} {'precision':>9}")
    for code in sorted(total):
        c = total[code]
        recall = f"{c['found'] / c['truth']:.3f}" if c["truth"] else "-"
        precision = f"{c['correct'] / c['findings']:.3f}" if c["findings"] else "-"
        print(f"{code:<42} {c['truth']:>6} {recall:>7} {c['findings']:>9} {precision:>9}")


if __name__ == "__main__":
    main()
