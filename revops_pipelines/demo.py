"""`revops demo` and `revops dev`: the project on the embedded default, nothing to set up.

A scenario is generated once into the sandbox state folder; later runs reuse it, so an
exception keeps its id and first detection across runs (move `REVOPS_AS_OF` forward to age
it). The sandbox servers play the three systems unless real URLs are configured (`revops dev`
only: the demo always uses the sandbox).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from revops_pipelines.settings import Settings

# Ctrl-C or SIGTERM stops `revops dev` within this (plus a moment), however its children behave.
STOP_GRACE_S = 5.0

LOCAL_INSTANCE_YAML = """\
# Local Dagster instance for the demo and `make dev`: runs and events on disk here.
# DuckDB allows one writer at a time: every asset that writes it uses the `duckdb` pool.
concurrency:
  pools:
    granularity: op
    default_limit: 1
telemetry:
  enabled: false
# The project's own log lines (a connector's retries, each stream's counts) in the run's log.
python_logs:
  python_log_level: INFO
  managed_python_loggers:
    - revops_pipelines
"""


def ensure_local_dagster_home(data_dir: Path) -> Path:
    """Use `$DAGSTER_HOME` when set, else a folder under the data directory."""
    home = Path(os.environ.get("DAGSTER_HOME") or data_dir / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(LOCAL_INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def ensure_scenario(state_dir: Path, *, customers: int, months: int, seed: int) -> None:
    from revops_pipelines.sandbox.generate import generate_state

    if (state_dir / "manifest.json").exists():
        print(f"reusing the scenario in {state_dir} (delete it for a new one)")
        return
    print(f"generating a scenario: {customers} customers, {months} months, seed {seed}")
    generate_state(state_dir, customers=customers, months=months, seed=seed, drift_rate=0.05)


def count_served_records(state_dir: Path) -> dict[str, int]:
    from revops_pipelines.sandbox.state import FILES, StateStore

    store = StateStore.load(state_dir)
    return {
        system: sum(len(store.collection(system, name).records) for name in names)
        for system, names in FILES.items()
    }


@contextmanager
def sandbox_systems(state_dir: Path) -> Iterator[None]:
    """Serve the state directory and point this process's settings at it."""
    from revops_pipelines.sandbox.serve import running_sandbox

    with running_sandbox(state_dir) as urls:
        served = count_served_records(state_dir)
        for system in ("crm", "billing", "erp"):
            url = urls.for_system(system)
            print(f"{system}={url}  ({served[system]} records)")
            os.environ[f"REVOPS_{system.upper()}_URL"] = url
        manifest = state_dir / "manifest.json"
        if manifest.exists() and "REVOPS_AS_OF" not in os.environ:
            os.environ["REVOPS_AS_OF"] = json.loads(manifest.read_text()).get("as_of") or ""
        yield


def run_demo(*, customers: int, months: int, seed: int) -> int:
    from revops_pipelines.defs.progress import run_with_progress
    from revops_pipelines.reconciliation.run import now_for

    settings = Settings.from_env()
    ensure_scenario(settings.sandbox_state_dir, customers=customers, months=months, seed=seed)
    ensure_local_dagster_home(settings.data_dir)
    with sandbox_systems(settings.sandbox_state_dir):
        print("running reconcile_job: extract, models, reconciliation, report")
        succeeded = run_with_progress("reconcile_job")
    if not succeeded:
        print("the reconciliation job failed; open the run in the Dagster UI (make dev)")
        return 1
    settings = Settings.from_env()  # with the scenario's as-of date the sandbox set
    print(
        summarize_exceptions(
            settings.duckdb_path,
            as_of=now_for(settings.as_of or None),
            reporting_currency=settings.reporting_currency,
        )
    )
    print(f"report: {(settings.output_dir / 'report.html').resolve()}")
    print(f"exceptions: {(settings.output_dir / 'drift_exceptions.csv').resolve()}")
    return 0


def summarize_exceptions(
    duckdb_path: Path, *, as_of: datetime | None = None, reporting_currency: str = "USD"
) -> str:
    """One line a person reads first: how much is open, how bad, how much needs a person."""
    import duckdb

    from revops_pipelines.reconciliation.money import load_rates
    from revops_pipelines.reconciliation.reading import read_exceptions

    as_of = as_of or datetime.now(UTC)
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        rates = load_rates(con, reporting_currency, on=as_of.date())
        reading = read_exceptions(con, as_of=as_of, rates=rates)
    severities = ", ".join(f"{level} {n}" for level, n in reading.by_severity.items())
    at_stake = rates.text(reading.at_stake_reporting_minor or 0, rates.reporting)
    return (
        f"open exceptions: {reading.open_total} ({severities or 'none'}); "
        f"at stake: {at_stake}; need review: {reading.review}"
    )


def run_dev(*, port: int) -> int:
    """`dagster dev` on the workspace, with the sandbox serving unless real URLs are set."""
    settings = Settings.from_env()
    ensure_local_dagster_home(settings.data_dir)
    command = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-p", str(port)]
    if settings.crm_url and settings.billing_url and settings.erp_url:
        return run_until_stopped(command)
    ensure_scenario(settings.sandbox_state_dir, customers=200, months=12, seed=7)
    with sandbox_systems(settings.sandbox_state_dir):
        return run_until_stopped(command)


def run_until_stopped(command: list[str], *, grace_s: float = STOP_GRACE_S) -> int:
    """Runs `command` until it ends or this process gets Ctrl-C or SIGTERM; then stops it
    and every process it started.

    The command gets its own process group: it is asked to stop with SIGINT (as Ctrl-C
    would), and whatever is left of the group after `grace_s` is killed, so no webserver,
    daemon or code server outlives `revops dev`.
    """
    process = subprocess.Popen(command, start_new_session=True)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return process.wait()
    except KeyboardInterrupt:
        _signal_group(process.pid, signal.SIGINT)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _signal_group(group: int, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)
