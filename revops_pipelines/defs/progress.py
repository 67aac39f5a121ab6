"""Running a job for the command line: one line per finished step or failed check, and the run
made as the workspace's code location would make it."""

import logging
import os
import re

import dagster as dg

_DURATION = re.compile(r" in (\S+?)\.?$")
# The code location as `workspace.yaml` names it.
MODULE = "revops_pipelines.definitions"
LOCATION_NAME = "revops_pipelines"


class _StepLines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            return
        step = (meta.get("step_key") or "").replace("__", "/")
        kind = event.event_type_value
        if kind == "STEP_SUCCESS":
            took = _DURATION.search(meta.get("orig_message", ""))
            print(f"  done    {step}" + (f"  ({took.group(1)})" if took else ""), flush=True)
        elif kind == "STEP_FAILURE":
            error = getattr(event.event_specific_data, "error", None)
            print(f"  FAILED  {step}: {error.message.strip() if error else ''}", flush=True)
        elif kind == "ASSET_CHECK_EVALUATION" and not event.event_specific_data.passed:
            key = event.event_specific_data.asset_check_key.to_user_string()
            print(f"  check   {key} did not pass", flush=True)


@dg.logger(description="One line per finished step or failed check, for `revops demo`.")
def progress_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.Logger("revops.progress", level=logging.DEBUG)
    logger.addHandler(_StepLines())
    return logger


defs = dg.Definitions(loggers={"progress": progress_logger, "console": dg.colored_console_logger})


def run_with_progress(job_name: str) -> bool:
    """Run a job in this process on the instance `$DAGSTER_HOME` names, printing its steps.

    The run is created with the code-location origin `workspace.yaml` gives, so the UI lists
    it under its job and re-executes it like a run launched there; its steps run in this
    process. The origin is built here (not read from the file) so an installed package,
    run from any folder, makes the same runs.
    """
    from dagster._core.definitions.reconstruct import ReconstructableRepository
    from dagster._core.execution.api import execute_run
    from dagster._core.remote_origin import RemoteRepositoryOrigin
    from dagster._core.workspace.load import location_origin_from_module_name

    location = location_origin_from_module_name(MODULE, None, ".", LOCATION_NAME)
    repository = ReconstructableRepository.for_module(
        MODULE, "definitions", working_directory=os.getcwd()
    )
    job = repository.get_reconstructable_job(job_name)
    job_def = job.get_definition()
    run_config: dict = {"loggers": {"progress": {}}}
    if job_def.executor_def.name == dg.multi_or_in_process_executor.name:
        run_config["execution"] = {"config": {"in_process": {}}}
    instance = dg.DagsterInstance.get()
    run = instance.create_run_for_job(
        job_def,
        run_config=run_config,
        remote_job_origin=RemoteRepositoryOrigin(
            location, repository.get_definition().name
        ).get_job_origin(job_name),
        job_code_origin=job.get_python_origin(),
    )
    return execute_run(job, run, instance).success
