"""Runs the reconciliation SQL models (`revops_pipelines/sql/reconciliation/`) with their
configuration."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from pathlib import Path

import duckdb

from revops_pipelines.settings import Settings
from revops_pipelines.sqlmodels import MODELS_ROOT, load_models, run_models

RECON_SCHEMA = "reconciliation"
FINDINGS_TABLE = "reconciliation.findings"


def now_for(as_of: str | date | None, *, current: datetime | None = None) -> datetime:
    """ "Now" for grace periods: the end of the `as_of` day in UTC, else the current time."""
    if as_of:
        day = as_of if isinstance(as_of, date) else date.fromisoformat(str(as_of)[:10])
        return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)
    return current or datetime.now(UTC)


def format_tolerances(tolerances: Mapping[str, int]) -> str:
    """The `tolerances` var: `USD=0,JPY=1`, parsed back into a table by `tolerance.sql`."""
    return ",".join(f"{code.upper()}={int(minor)}" for code, minor in sorted(tolerances.items()))


def reconciliation_vars(
    *,
    now: datetime,
    tolerances: Mapping[str, int] | None = None,
    name_match_threshold: float = 0.92,
    grace_days: int = 30,
) -> dict[str, object]:
    """The vars the reconciliation models read."""
    return {
        "now": now.astimezone(UTC).isoformat(),
        "tolerances": format_tolerances(tolerances or {}),
        "name_match_threshold": float(name_match_threshold),
        "grace_days": int(grace_days),
    }


def vars_from_settings(settings: Settings, *, as_of: str | None = None) -> dict[str, object]:
    """Vars from the settings; `as_of` (the manifest's date) overrides `settings.as_of`."""
    return reconciliation_vars(
        now=now_for(as_of or settings.as_of or None),
        tolerances=settings.tolerance_minor,
        name_match_threshold=settings.name_match_threshold,
        grace_days=settings.subscription_grace_days,
    )


def reconciliation_model_names(root: Path = MODELS_ROOT) -> list[str]:
    return [m.name for m in load_models(root) if m.schema == RECON_SCHEMA]


def run_reconciliation(
    con: duckdb.DuckDBPyConnection,
    *,
    vars: Mapping[str, object],
    root: Path = MODELS_ROOT,
) -> dict[str, int]:
    """Builds every reconciliation model from the canonical tables; row counts by model."""
    models = load_models(root)
    select = {m.name for m in models if m.schema == RECON_SCHEMA}
    return run_models(con, models, select=select, vars=vars, root=root)
