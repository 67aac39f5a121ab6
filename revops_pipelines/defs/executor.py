"""How every run of this code location executes its steps: one after another, in the run's
own process, whatever the instance (`DAGSTER_HOME`) says or lacks.

Every step writes the one DuckDB file, and DuckDB allows one writing process at a time,
so steps in parallel processes could only fail or wait on each other. In one process
they also skip a Python start per step. The systems still overlap: the extract step
reads all three at the same time on threads of its own.
"""

import dagster as dg

EXECUTOR = dg.in_process_executor

defs = dg.Definitions(executor=EXECUTOR)
