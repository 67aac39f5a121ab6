"""The SQL model layer: model files under `revops_pipelines/sql/`, ordered by their refs, run
in DuckDB."""

from revops_pipelines.sqlmodels.functions import normalize_text_value, register_functions
from revops_pipelines.sqlmodels.loader import (
    MODELS_ROOT,
    QUARANTINE_COLUMNS,
    QUARANTINE_SOURCE,
    DuplicateModelError,
    MissingVarError,
    ModelCycleError,
    ModelRunError,
    SqlModel,
    SqlModelError,
    TemplateError,
    UnknownRefError,
    ensure_sources,
    load_models,
    load_seeds,
    order_models,
    parse_model,
    run_models,
    sql_literal,
    upstream_closure,
)

__all__ = [
    "MODELS_ROOT",
    "QUARANTINE_COLUMNS",
    "QUARANTINE_SOURCE",
    "DuplicateModelError",
    "MissingVarError",
    "ModelCycleError",
    "ModelRunError",
    "SqlModel",
    "SqlModelError",
    "TemplateError",
    "UnknownRefError",
    "ensure_sources",
    "load_models",
    "load_seeds",
    "normalize_text_value",
    "order_models",
    "parse_model",
    "register_functions",
    "run_models",
    "sql_literal",
    "upstream_closure",
]
