"""The Dagster code location: everything under `defs/`, loaded by folder."""

import dagster as dg

from revops_pipelines import defs


@dg.definitions
def definitions() -> dg.Definitions:
    return dg.load_defs(defs_root=defs)
