"""`revops demo`: the whole job on the embedded default, with nothing to set up.

Generates a scenario (once; later runs reuse it, so exceptions age across runs),
serves it with the sandbox servers, runs the reconciliation job in a local Dagster
instance, and writes the report.
"""

from __future__ import annotations

import os
from pathlib import Path

from revops_pipelines.settings import Settings

LOCAL_INSTANCE_YAML = """\
# Local Dagster instance for the demo and `make dev`: runs and events on disk here.
# DuckDB allows one writer at a time: every asset that writes it uses the `duckdb` pool.
concurrency:
  pools:
    granularity: op
    default_limit: 1
telemetry:
  enabled: false
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


def count_served_records(state_dir: Path) -> dict[str, int]:
    from revops_pipelines.sandbox.state import FILES, StateStore

    store = StateStore.load(state_dir)
    return {
        system: sum(len(store.collection(system, name).records) for name in names)
        for system, names in FILES.items()
    }


def run_demo(*, customers: int, months: int, seed: int) -> int:
    import dagster as dg

    from revops_pipelines.definitions import definitions
    from revops_pipelines.sandbox.generate import generate_state
    from revops_pipelines.sandbox.serve import running_sandbox

    settings = Settings.from_env()
    state_dir = settings.sandbox_state_dir
    if not (state_dir / "manifest.json").exists():
        print(f"generating a scenario: {customers} customers, {months} months, seed {seed}")
        generate_state(state_dir, customers=customers, months=months, seed=seed, drift_rate=0.05)
    else:
        print(f"reusing the scenario in {state_dir} (delete it for a new one)")

    ensure_local_dagster_home(settings.data_dir)
    with running_sandbox(state_dir) as urls:
        served = count_served_records(state_dir)
        for system, url in (("crm", urls.crm), ("billing", urls.billing), ("erp", urls.erp)):
            print(f"{system}={url}  ({served[system]} records)")
        os.environ["REVOPS_CRM_URL"] = urls.crm
        os.environ["REVOPS_BILLING_URL"] = urls.billing
        os.environ["REVOPS_ERP_URL"] = urls.erp
        os.environ.setdefault("REVOPS_AS_OF", _manifest_as_of(state_dir) or "")

        print("running reconcile_job: extract, models, reconciliation, report")
        job = definitions().resolve_job_def("reconcile_job")
        result = job.execute_in_process(
            run_config={"loggers": {"progress": {}}},
            instance=dg.DagsterInstance.get(),
            raise_on_error=False,
        )

    if not result.success:
        print("the reconciliation job failed; see the run in the Dagster UI (make dev)")
        return 1
    report = settings.output_dir / "report.html"
    print(f"report: {report.resolve()}")
    print(f"exceptions: {(settings.output_dir / 'drift_exceptions.csv').resolve()}")
    return 0


def _manifest_as_of(state_dir: Path) -> str | None:
    import json

    manifest = state_dir / "manifest.json"
    if not manifest.exists():
        return None
    return json.loads(manifest.read_text()).get("as_of")
