"""What every asset of the code location carries for the Dagster UI: owners, and links to the
code that builds it (its Python function; a SQL model also its file)."""

import warnings
from pathlib import Path

import dagster as dg

OWNERS = ["team:revops"]


def sql_reference(path: Path) -> dict[str, dg.CodeReferencesMetadataValue]:
    """`dagster/code_references` naming a SQL file; the Python source is added to it later."""
    with warnings.catch_warnings():
        # Code references are beta in Dagster 1.13; the UI shows them all the same.
        warnings.simplefilter("ignore", dg.BetaWarning)
        reference = dg.LocalFileCodeReference(file_path=str(path.resolve()), label="SQL")
        return {
            "dagster/code_references": dg.CodeReferencesMetadataValue(code_references=[reference])
        }


def with_conventions(defs: dg.Definitions) -> dg.Definitions:
    """`defs` with every asset owned by `OWNERS` and linked to the Python function building it."""
    from dagster._record import replace  # Definitions has no public way to swap its assets

    owned = dg.map_asset_specs(lambda spec: spec.replace_attributes(owners=OWNERS), defs.assets)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return replace(defs, assets=dg.with_source_code_references(list(owned)))
