"""Time the scenario generator at demo scale: `python benchmarks/generate.py`.

Prints wall-clock seconds, records per file and bytes written for one run
(default 10,000 customers × 12 months, the size the 60-second goal is about).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from revops_pipelines.sandbox.generate import generate_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--drift-rate", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=None, help="keep the files here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch) / "state"
        started = time.perf_counter()
        counts = generate_state(
            out,
            customers=args.customers,
            months=args.months,
            seed=args.seed,
            drift_rate=args.drift_rate,
        )
        seconds = time.perf_counter() - started
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())

    print(f"customers={args.customers} months={args.months} seed={args.seed}")
    for name, count in sorted(counts.items()):
        print(f"  {name:28s} {count:>9,d}")
    records = sum(v for k, v in counts.items() if k != "truth")
    print(f"records: {records:,d}  bytes: {size:,d}")
    print(f"seconds: {seconds:.2f}  ({records / seconds:,.0f} records/s)")


if __name__ == "__main__":
    main()
