"""pandera models of the canonical tables and the function that checks a table with them."""

from revops_pipelines.schemas.canonical import CANONICAL_SCHEMAS, iso_currencies
from revops_pipelines.schemas.validate import (
    UnknownTableError,
    ValidationResult,
    markdown_table,
    validate_frame,
    validate_table,
)

__all__ = [
    "CANONICAL_SCHEMAS",
    "UnknownTableError",
    "ValidationResult",
    "iso_currencies",
    "markdown_table",
    "validate_frame",
    "validate_table",
]
