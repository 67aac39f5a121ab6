"""One line per finished step or failed check, and the code location as `workspace.yaml`
names it (the demo makes its runs and sensors with that origin)."""

import logging
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
