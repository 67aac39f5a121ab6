"""The Dagster code location: everything under `defs/`, loaded by folder.

The folder is named by module rather than found through pyproject's `[tool.dg]`, so the code
location also loads from an installed wheel, which carries no pyproject.toml.
"""

from pathlib import Path

import dagster as dg

from revops_pipelines import defs
from revops_pipelines.defs.conventions import with_conventions


@dg.definitions
def definitions() -> dg.Definitions:
    tree = dg.ComponentTree(
        defs_module=defs,
        project_root=Path(__file__).resolve().parent.parent,
        code_location_name="revops_pipelines",
    )
    return with_conventions(tree.build_defs())
