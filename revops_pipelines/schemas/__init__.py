"""pandera models of the canonical tables, the functions that check a table with them and
quarantine the rows they refuse; the master-data rules that check records against each other
(`schemas.master_data`)."""

from revops_pipelines.schemas.canonical import CANONICAL_SCHEMAS, iso_currencies
from revops_pipelines.schemas.quarantine import (
    DEFAULT_MAX_SHARE,
    QUARANTINE_TABLE,
    QuarantineResult,
    ensure_quarantine_table,
    quarantine_counts,
    quarantine_table,
)
from revops_pipelines.schemas.validate import (
    UnknownTableError,
    ValidationResult,
    markdown_table,
    validate_frame,
    validate_table,
)

__all__ = [
    "CANONICAL_SCHEMAS",
    "DEFAULT_MAX_SHARE",
    "QUARANTINE_TABLE",
    "QuarantineResult",
    "UnknownTableError",
    "ValidationResult",
    "ensure_quarantine_table",
    "iso_currencies",
    "markdown_table",
    "quarantine_counts",
    "quarantine_table",
    "validate_frame",
    "validate_table",
]
