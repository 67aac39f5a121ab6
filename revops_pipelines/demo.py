"""`revops demo` and `revops dev`: the project on the embedded default, nothing to set up.

The demo runs the whole loop as production would: the sandbox plays the three systems and
delivers every change as a signed webhook to the receiver; a real `dagster-daemon` on the
local instance fires the sensors (the landing zone, which also re-verifies each push, and
the new correction plan) and launches the runs; the demo only submits the first run, makes
a few live changes and reads what happened.

A scenario is generated once into the sandbox state folder; later runs reuse it (and the
corrections earlier runs pushed into it), so an exception keeps its id and first detection
across runs. `revops dev` serves the same folder and opens the same runs in the UI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from revops_pipelines.settings import Settings

# Ctrl-C or SIGTERM stops `revops dev` and `revops demo` within this (plus a moment).
STOP_GRACE_S = 5.0
# The landing-zone and push sensors' interval in the demo (the daemon's loop adds up to 5 s).
DEMO_SENSOR_INTERVAL_S = 2
SETTLE_TIMEOUT_S = 900.0
# What the demo changes in the systems while everything runs, in this order.
LIVE_CHANGES = ("win-opportunity", "new-invoice", "pay-invoice", "drift-erp-invoice")
SENSORS = ("landing_zone_sensor", "new_correction_plan")

LOCAL_INSTANCE_YAML = """\
# Local Dagster instance for the demo and `make dev`: runs and events on disk here.
# DuckDB allows one writer at a time: every asset that writes it uses the `duckdb` pool.
concurrency:
  pools:
    granularity: op
    default_limit: 1
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
sensors:
  use_threads: true
  num_workers: 4
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
def sandbox_systems(state_dir: Path, *, deliver_to: str | None = None) -> Iterator[Any]:
    """Serve the state directory and point this process's settings (and children's) at it;
    with `deliver_to`, every change is delivered there as a signed webhook."""
    from revops_pipelines.sandbox.serve import WebhookSecrets, running_sandbox

    secrets = WebhookSecrets(**Settings.from_env().webhook_secrets())
    with running_sandbox(state_dir, deliver_to=deliver_to, webhook_secrets=secrets) as urls:
        served = count_served_records(state_dir)
        for system in ("crm", "billing", "erp"):
            url = urls.for_system(system)
            print(f"{system}={url}  ({served[system]} records)")
            os.environ[f"REVOPS_{system.upper()}_URL"] = url
        manifest = state_dir / "manifest.json"
        if manifest.exists() and "REVOPS_AS_OF" not in os.environ:
            os.environ["REVOPS_AS_OF"] = json.loads(manifest.read_text()).get("as_of") or ""
        yield urls


# -- the demo


@dataclass
class DemoOptions:
    state: Path | None = None
    out: Path | None = None
    dry_run: bool = False
    customers: int = 2000
    months: int = 12
    seed: int = 7


def run_demo(options: DemoOptions) -> int:
    """`revops demo`: the whole loop through a real daemon; stops everything it started."""
    begun = time.monotonic()
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, _interrupt_once) for sig in stops}
    try:
        return _demo(options, begun)
    except KeyboardInterrupt:
        print("\nrevops demo: stopped; everything it started is stopped", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print(f"revops demo: {time.monotonic() - begun:.0f} s", flush=True)


def local_sensor_intervals() -> None:
    """The sensors every few seconds on the local instance (`revops demo` and `revops dev`
    alike, unless set): the settings are part of a job's snapshot, so the demo's runs are
    the ones `revops dev` loads."""
    for name in ("LANDING_SENSOR_INTERVAL_S", "PUSH_SENSOR_INTERVAL_S"):
        os.environ.setdefault(f"REVOPS_{name}", str(DEMO_SENSOR_INTERVAL_S))


def _demo_settings(out: Path | None) -> Settings:
    """The settings the demo and every process the daemon starts read. Paths stay as given:
    the daemon, its code server and its runs work in this directory."""
    if out is not None:
        os.environ["REVOPS_OUTPUT_DIR"] = str(out)
    local_sensor_intervals()
    return Settings.from_env()


def _demo(options: DemoOptions, begun: float) -> int:
    settings = Settings.from_env()
    if options.state is not None:
        if not (options.state / "crm").is_dir():
            print(f"revops demo: {options.state} is not a state directory", file=sys.stderr)
            return 2
        os.environ["REVOPS_SANDBOX_STATE_DIR"] = str(options.state)
        settings = Settings.from_env()
    else:
        ensure_scenario(
            settings.sandbox_state_dir,
            customers=options.customers,
            months=options.months,
            seed=options.seed,
        )
    with running_loop(options.out, push=not options.dry_run, clock=Clock(begun)) as loop:
        loop.materialize("materialize")
        # Live changes as the first corrections go out: the landing-zone run for the push's
        # webhooks takes the changes' webhooks in too, and the re-verification reads both.
        pushing = None if options.dry_run else (lambda: loop.watcher.started("push_corrections"))
        if not loop.settler.wait(until=pushing):
            return loop.failed()
        loop.clock.say("live changes in the sandbox:")
        changes = loop.change(*LIVE_CHANGES)
        if not loop.settle():
            return loop.failed()
        if options.dry_run:
            # Nothing was pushed: the landing runs already reconciled; one more run re-reads all.
            loop.materialize("reconcile again")
            if not loop.settle():
                return loop.failed()
        summary = summarize_demo(loop.settings, changes=changes)
    print(summary.text(loop.settings, dry_run=options.dry_run))
    return 0


@dataclass
class Loop:
    """The sandbox delivering to the receiver, and the daemon running the sensors."""

    settings: Settings
    urls: Any
    receiver: Any
    instance: Any
    watcher: RunWatcher
    settler: Settler
    clock: Clock
    daemon_log: Path

    def materialize(self, why: str) -> None:
        run = submit_run(self.instance, "reconcile_job", tags={"revops/demo": why})
        self.clock.say(f"{why}: reconcile_job run {run.run_id[:8]} submitted")

    def change(self, *names: str) -> list[LiveChange]:
        """Scripted changes through the sandbox, delivered as webhooks and received."""
        changes = make_live_changes(self.urls.billing, self.clock, names)
        if self.urls.deliverer is not None:
            self.urls.deliverer.wait_idle(timeout=60)
        self.receiver.flush_receipts()
        return changes

    def settle(self) -> bool:
        settled = self.settler.wait()
        self.receiver.flush_receipts()
        return settled

    def failed(self) -> int:
        names = ", ".join(f"{job} {run_id[:8]}" for run_id, job in self.watcher.failed.items())
        print(
            f"revops demo: runs failed ({names or 'none finished in time'}); the daemon's log "
            f"is {self.daemon_log}; open the runs with `revops dev`",
            file=sys.stderr,
        )
        return 1


@contextmanager
def running_loop(out: Path | None, *, push: bool, clock: Clock) -> Iterator[Loop]:
    """Receiver, sandbox (on the settings' state directory) and daemon with the sensors on,
    until the block ends; then all of them are stopped."""
    import dagster as dg

    from revops_pipelines.landing_zone.serve import running_receiver

    settings = _demo_settings(out)
    home = ensure_local_dagster_home(settings.data_dir)
    with ExitStack() as stack:
        receiver = stack.enter_context(
            running_receiver(
                settings.landing_dir,
                secrets=settings.webhook_secrets(),
                ledger_url=settings.ledger_url,
                body_limit=settings.webhook_body_limit,
            )
        )
        print(f"webhooks={receiver.url}  (landing in {settings.landing_dir})")
        urls = stack.enter_context(
            sandbox_systems(settings.sandbox_state_dir, deliver_to=receiver.url)
        )
        settings = Settings.from_env()
        # The instance's storage is created here, before the daemon opens it: two processes
        # creating the same SQLite tables at once would fail one of them.
        instance = stack.enter_context(dg.DagsterInstance.get())
        instance.get_runs(limit=1)
        instance.fetch_materializations(dg.AssetKey("revops_demo"), limit=1)
        sensors = SENSORS if push else ("landing_zone_sensor",)
        start_sensors(instance, sensors)
        daemon_log = home / "daemon.log"
        daemon = stack.enter_context(running_daemon(home, daemon_log))
        clock.say(f"dagster-daemon started on {home} (log {daemon_log})")
        clock.say(f"sensors running: {', '.join(sensors)}")
        watcher = RunWatcher(instance, clock)
        yield Loop(
            settings=settings,
            urls=urls,
            receiver=receiver,
            instance=instance,
            watcher=watcher,
            settler=Settler(instance, watcher, settings.landing_dir, push=push, daemon=daemon),
            clock=clock,
            daemon_log=daemon_log,
        )


class Clock:
    """Progress lines stamped with seconds since the demo began."""

    def __init__(self, begun: float) -> None:
        self.begun = begun

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.begun:5.0f}s] {text}", flush=True)


# -- the daemon and its instance


def workspace_file(home: Path) -> Path:
    """A workspace naming the code location as `workspace.yaml` does (same origin, so the
    runs are the UI's runs), written beside the instance so an installed package has one."""
    from revops_pipelines.defs.progress import LOCATION_NAME, MODULE

    path = home / "workspace.yaml"
    path.write_text(
        "load_from:\n"
        "  - python_module:\n"
        f"      module_name: {MODULE}\n"
        f"      location_name: {LOCATION_NAME}\n"
        "      working_directory: .\n"
    )
    return path


@contextmanager
def running_daemon(home: Path, log_path: Path) -> Iterator[subprocess.Popen]:
    """`dagster-daemon run` on the instance in `home`, in a process group of its own that is
    stopped (and whatever it started with it) when the block ends."""
    command = [
        sys.executable,
        "-m",
        "dagster._daemon",
        "run",
        "-w",
        str(workspace_file(home)),
        "--log-level",
        "warning",
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, start_new_session=True, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        stop_process_group(process)


def _origin(name: str):
    from dagster._core.remote_origin import RemoteInstigatorOrigin, RemoteRepositoryOrigin
    from dagster._core.workspace.load import location_origin_from_module_name

    from revops_pipelines.defs.progress import LOCATION_NAME, MODULE

    location = location_origin_from_module_name(MODULE, None, ".", LOCATION_NAME)
    repository = RemoteRepositoryOrigin(location, "__repository__")
    return repository, RemoteInstigatorOrigin(repository, name)


def _selector_id(name: str) -> str:
    from dagster._core.definitions.selector import InstigatorSelector
    from dagster._serdes import create_snapshot_id

    from revops_pipelines.defs.progress import LOCATION_NAME

    return create_snapshot_id(
        InstigatorSelector(location_name=LOCATION_NAME, repository_name="__repository__", name=name)
    )


def start_sensors(instance, names: tuple[str, ...]) -> None:
    """Mark the sensors running on the instance, as the UI's toggle does; the daemon then
    ticks them (without loading the code location in this process)."""
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.definitions.sensor_definition import SensorType
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        SensorInstigatorData,
    )
    from dagster._time import get_current_timestamp

    for name in names:
        origin = _origin(name)[1]
        stored = instance.get_instigator_state(origin.get_id(), _selector_id(name))
        if stored is not None:
            if not stored.is_running:
                instance.update_instigator_state(stored.with_status(InstigatorStatus.RUNNING))
            continue
        instance.add_instigator_state(
            InstigatorState(
                origin,
                InstigatorType.SENSOR,
                InstigatorStatus.RUNNING,
                SensorInstigatorData(
                    last_sensor_start_timestamp=get_current_timestamp(),
                    sensor_type=SensorType.STANDARD,
                ),
            )
        )


def sensor_cursor(instance, name: str) -> str | None:
    state = instance.get_instigator_state(_origin(name)[1].get_id(), _selector_id(name))
    return state.instigator_data.cursor if state and state.instigator_data else None


def submit_run(instance, job_name: str, *, tags: dict[str, str]):
    """A run of `job_name` queued on the instance with the workspace's code-location origin,
    for the daemon to launch (as the UI's Materialize would)."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from revops_pipelines.defs.progress import MODULE

    repository_origin = _origin(job_name)[0]
    repository = ReconstructableRepository.for_module(
        MODULE, "definitions", working_directory=os.getcwd()
    )
    job = repository.get_reconstructable_job(job_name)
    run = instance.create_run_for_job(
        job.get_definition(),
        tags=tags,
        remote_job_origin=repository_origin.get_job_origin(job_name),
        job_code_origin=job.get_python_origin(),
    )
    return instance.submit_run(run.run_id, workspace=None)


# -- watching the runs


class RunWatcher:
    """Prints each run as it is queued, starts and ends, and each step it finishes."""

    def __init__(self, instance, clock: Clock) -> None:
        self.instance = instance
        self.clock = clock
        self.status: dict[str, str] = {}
        self.steps: dict[str, int] = {}
        self.failed: dict[str, str] = {}
        self.runs: dict[str, Any] = {}
        self.started_at = datetime.now(UTC).timestamp()

    def poll(self) -> list:
        import dagster as dg
        from dagster._core.events import DagsterEventType

        runs = [
            record.dagster_run
            for record in self.instance.get_run_records(limit=50)
            if record.create_timestamp.timestamp() >= self.started_at - 1
        ]
        for run in reversed(runs):
            self.runs[run.run_id] = run
            status = run.status.value
            if self.status.get(run.run_id) != status:
                self.status[run.run_id] = status
                why = run.tags.get("dagster/sensor_name") or run.tags.get("revops/demo") or ""
                self.clock.say(
                    f"run {run.job_name} {run.run_id[:8]} {status.lower()}"
                    + (f"  ({why})" if why and status in ("QUEUED", "NOT_STARTED") else "")
                )
                if run.status == dg.DagsterRunStatus.FAILURE:
                    self.failed[run.run_id] = run.job_name
            if run.status in (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.SUCCESS):
                events = self.instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_SUCCESS)
                for event in events[self.steps.get(run.run_id, 0) :]:
                    step = (event.step_key or "").replace("__", "/")
                    self.clock.say(f"  done {step}  ({run.job_name} {run.run_id[:8]})")
                self.steps[run.run_id] = len(events)
        return runs

    def started(self, job_name: str) -> bool:
        """Whether a run of `job_name` made during the demo has started (or ended)."""
        import dagster as dg

        begun = (dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.SUCCESS)
        return any(r.job_name == job_name and r.status in begun for r in self.runs.values())


class Settler:
    """Waits until the daemon has nothing left to do: no run queued or running, every landed
    event taken by the landing sensor, and the newest correction plan pushed and re-verified
    (when pushing)."""

    def __init__(
        self,
        instance,
        watcher: RunWatcher,
        landing_dir: Path,
        *,
        push: bool,
        daemon: subprocess.Popen | None = None,
    ) -> None:
        self.instance = instance
        self.watcher = watcher
        self.landing_dir = landing_dir
        self.push = push
        self.daemon = daemon

    def busy(self) -> str | None:
        import dagster as dg

        from revops_pipelines.landing_zone.notices import pending_events

        runs = self.watcher.poll()
        if any(not r.is_finished for r in runs):
            return "runs"
        cursor = sensor_cursor(self.instance, "landing_zone_sensor")
        if pending_events(self.landing_dir, json.loads(cursor) if cursor else None)[0]:
            return "landed events"
        if not self.push:
            return None
        from revops_pipelines.defs.corrections import PLAN_KEY, PLAN_TAG, PUSH_KEY
        from revops_pipelines.defs.landing import PUSH_CURSOR

        records = self.instance.fetch_materializations(PLAN_KEY, limit=1).records
        if not records:
            return None
        metadata = records[0].asset_materialization.metadata
        pending = metadata.get("pending")
        if pending is None or pending.value == 0:
            return None
        plan_id = str(metadata["plan_id"].value)
        pushes = self.instance.get_runs(
            filters=dg.RunsFilter(job_name="push_corrections", tags={PLAN_TAG: plan_id})
        )
        if not pushes or not all(r.is_finished for r in pushes):
            return "push"
        # The landing sensor re-verifies a push in its next refresh run (already finished,
        # since no run is in progress) once its cursor is past the push.
        pushed = self.instance.fetch_materializations(PUSH_KEY, limit=1).records
        seen = int(json.loads(cursor or "{}").get(PUSH_CURSOR) or 0)
        return "re-verify" if pushed and pushed[0].storage_id > seen else None

    def wait(
        self,
        *,
        until: Callable[[], bool] | None = None,
        quiet_s: float = 3.0,
        timeout: float = SETTLE_TIMEOUT_S,
    ) -> bool:
        """True once nothing was busy for `quiet_s` (a sensor's next tick included), or
        `until` holds; False when a run failed or on timeout."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            idle = self.busy() is None
            if self.watcher.failed:
                return False
            if self.daemon is not None and self.daemon.poll() is not None:
                print(f"dagster-daemon ended (exit {self.daemon.returncode})", file=sys.stderr)
                return False
            if until is not None and until():
                return True
            if idle:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= quiet_s:
                    return not self.watcher.failed
            else:
                quiet_since = None
            time.sleep(0.5)
        return False


# -- live changes


@dataclass
class LiveChange:
    name: str
    at: datetime
    touched: list[dict[str, str]]


def make_live_changes(admin_url: str, clock: Clock, names: tuple[str, ...]) -> list[LiveChange]:
    """Each scripted change through the sandbox's admin endpoint, as a person would make it."""
    import httpx

    from revops_pipelines.sandbox.serve import ADMIN_PREFIX

    made = []
    for name in names:
        at = datetime.now(UTC)
        response = httpx.post(f"{admin_url}{ADMIN_PREFIX}changes/{name}", timeout=30)
        if response.status_code == 409:
            clock.say(f"  {name}: nothing to change ({response.json()['error']})")
            continue
        response.raise_for_status()
        touched = response.json()["touched"]
        made.append(LiveChange(name, at, touched))
        records = ", ".join(f"{t['system']} {t['object']} {t['id']}" for t in touched)
        clock.say(f"  {name}: {records}")
    return made


# -- the summary


@dataclass
class DemoSummary:
    found_by_type: dict[str, int]
    corrected: set[str]
    pushed_still_open: set[str]
    open_total: int
    review: int
    found_at_stake: str
    open_at_stake: str
    correction_latency_s: dict[str, float] = field(default_factory=dict)
    live_found: dict[str, list[str]] = field(default_factory=dict)

    def text(self, settings: Settings, *, dry_run: bool) -> str:
        found = sum(self.found_by_type.values())
        lines = [
            "",
            f"findings: {found} ({self.found_at_stake} at stake)",
            *(f"  {n:5d}  {kind}" for kind, n in sorted(self.found_by_type.items())),
            (
                "corrected: none (dry run: planned, nothing pushed)"
                if dry_run
                else f"corrected: {len(self.corrected)} (pushed, then re-verified)"
                + (
                    f"; {len(self.pushed_still_open)} pushed but still open"
                    if self.pushed_still_open
                    else ""
                )
            ),
            f"left for review: {self.open_total} open ({self.review} need a person by policy), "
            f"{self.open_at_stake} at stake",
        ]
        for name, kinds in self.live_found.items():
            lines.append(f"live change {name}: {', '.join(kinds) or 'no finding'}")
        if self.correction_latency_s:
            took = ", ".join(f"{n} {s:.0f} s" for n, s in self.correction_latency_s.items())
            lines.append(f"webhook to correction: {took}")
        out = settings.output_dir
        lines += [
            f"report: {out / 'report.html'}",
            f"exceptions: {out / 'drift_exceptions.csv'} and .parquet",
            "the same runs in the Dagster UI: revops dev   (or: make dev)",
        ]
        return "\n".join(lines)


def _correction_times(con, ledger) -> dict[str, datetime]:
    """When each exception's corrections had all been applied, by exception id."""
    from sqlalchemy import select

    from revops_pipelines.corrections.run import PLAN_TABLE
    from revops_pipelines.ledger.models import CorrectionLog

    try:
        keys = con.execute(f"SELECT DISTINCT reason, idempotency_key FROM {PLAN_TABLE}").fetchall()
    except Exception:  # no plan was ever stored
        return {}
    with ledger.engine.connect() as connection:
        applied = dict(
            connection.execute(
                select(CorrectionLog.idempotency_key, CorrectionLog.at).where(
                    CorrectionLog.status.in_(("applied", "verified"))
                )
            ).all()
        )
    by_exception: dict[str, list[str]] = {}
    for exception_id, key in keys:
        by_exception.setdefault(exception_id, []).append(key)
    done = {}
    for exception_id, exception_keys in by_exception.items():
        if all(key in applied for key in exception_keys):
            done[exception_id] = max(_aware(applied[key]) for key in exception_keys)
    return done


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _receipt_times(ledger, change: LiveChange) -> list[datetime]:
    """When webhooks naming a record of `change` were received (from the change on)."""
    from sqlalchemy import select

    from revops_pipelines.ledger.models import WebhookReceipt

    quoted = [f'"{t["id"]}"' for t in change.touched]
    with ledger.engine.connect() as connection:
        rows = connection.execute(
            select(WebhookReceipt.payload, WebhookReceipt.received_at).where(
                WebhookReceipt.received_at >= change.at
            )
        ).all()
    return [_aware(at) for payload, at in rows if any(q in payload for q in quoted)]


@dataclass(frozen=True)
class ChangeOutcome:
    """What reconciliation found about one live change, and how long its correction took:
    from the first webhook naming its records to the last write that corrected them."""

    change: LiveChange
    found: list[str]
    webhook_to_correction_s: float | None


def change_outcomes(settings: Settings, changes: list[LiveChange]) -> list[ChangeOutcome]:
    import duckdb

    from revops_pipelines.ledger import Ledger
    from revops_pipelines.reconciliation.reading import exception_rows
    from revops_pipelines.reconciliation.run import now_for

    as_of = now_for(settings.as_of or None)
    with (
        duckdb.connect(str(settings.duckdb_path), read_only=True) as con,
        Ledger(settings.ledger_url) as ledger,
    ):
        every = exception_rows(con, as_of=as_of, open_only=False)
        corrected_at = _correction_times(con, ledger)
        received = [_receipt_times(ledger, change) for change in changes]
    outcomes = []
    for change, times in zip(changes, received, strict=True):
        ids = {t["id"] for t in change.touched}
        rows = [
            r
            for r in every
            if ids & {str(r.get(c) or "") for c in ("crm_id", "billing_id", "erp_id")}
        ]
        done = [corrected_at[r["exception_id"]] for r in rows if r["exception_id"] in corrected_at]
        took = (max(done) - min(times)).total_seconds() if done and times else None
        outcomes.append(ChangeOutcome(change, sorted({r["drift_type"] for r in rows}), took))
    return outcomes


def summarize_demo(settings: Settings, *, changes: list[LiveChange]) -> DemoSummary:
    """The demo's numbers, read from DuckDB and the ledger after the last run."""
    import duckdb

    from revops_pipelines.ledger import Ledger
    from revops_pipelines.reconciliation.money import load_rates
    from revops_pipelines.reconciliation.reading import exception_rows, read_exceptions
    from revops_pipelines.reconciliation.run import now_for

    as_of = now_for(settings.as_of or None)
    with (
        duckdb.connect(str(settings.duckdb_path), read_only=True) as con,
        Ledger(settings.ledger_url) as ledger,
    ):
        rates = load_rates(con, settings.reporting_currency, on=as_of.date())
        every = exception_rows(con, as_of=as_of, rates=rates, open_only=False)
        reading = read_exceptions(con, as_of=as_of, rates=rates)
        corrected_at = _correction_times(con, ledger)
    by_type: dict[str, int] = {}
    for row in every:
        by_type[row["drift_type"]] = by_type.get(row["drift_type"], 0) + 1
    found_minor = sum(r["reporting_minor"] or 0 for r in every)
    outcomes = change_outcomes(settings, changes)
    currency = rates.reporting
    return DemoSummary(
        found_by_type=by_type,
        corrected={r["exception_id"] for r in every if not r["is_open"]} & set(corrected_at),
        pushed_still_open={r["exception_id"] for r in reading.rows} & set(corrected_at),
        open_total=reading.open_total,
        review=reading.review,
        found_at_stake=rates.text(found_minor, currency),
        open_at_stake=rates.text(reading.at_stake_reporting_minor or 0, currency),
        correction_latency_s={
            o.change.name: o.webhook_to_correction_s
            for o in outcomes
            if o.webhook_to_correction_s is not None
        },
        live_found={o.change.name: o.found for o in outcomes},
    )


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


# -- `revops dev` and stopping process groups


def run_dev(*, port: int) -> int:
    """`dagster dev` on the workspace, with the sandbox serving unless real URLs are set."""
    local_sensor_intervals()
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
    and every process it started (`stop_process_group`)."""
    process = subprocess.Popen(command, start_new_session=True)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_process_group(process, grace_s=grace_s)


def stop_process_group(process: subprocess.Popen, *, grace_s: float = STOP_GRACE_S) -> None:
    """Stops a command started in a process group of its own, and everything it started.

    It is asked to stop with SIGINT (as Ctrl-C would); whatever is left after `grace_s` is
    killed: the group, and by id any descendant that left the group, so no webserver,
    daemon, code server or run outlives the command.
    """
    started = descendants(process.pid)
    _signal_group(process.pid, signal.SIGINT)
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)
    started |= descendants(process.pid)
    _signal_group(process.pid, signal.SIGKILL)
    for pid in started:
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    process.wait()


def descendants(root: int) -> set[int]:
    """Every process below `root`, zombies included (Linux's /proc; none elsewhere)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _interrupt_once(signum: int, frame: object) -> None:
    """The first Ctrl-C or SIGTERM stops the demo; later ones are ignored, so they cannot cut
    short the stopping of what it started."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _signal_group(group: int, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)
