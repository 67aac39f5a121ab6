"""The corrections policy: one reviewed TOML file, shipped with the package."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

TARGETS = ("crm", "billing", "erp")


class PolicyError(ValueError):
    """A policy file that cannot be used; names the key and why."""


@dataclass(frozen=True)
class TargetLimits:
    rate_per_s: float
    max_attempts: int
    concurrency: int = 1
    batch_size: int = 1
    max_allowance_share: float = 1.0


@dataclass(frozen=True)
class Policy:
    actions: dict[str, str]
    system_of_record: dict[str, dict[str, str]]
    max_actions: int
    max_share: float
    targets: dict[str, TargetLimits] = field(default_factory=dict)
    source: str = ""

    def action(self, drift_type: str) -> str:
        return self.actions.get(drift_type, "review")

    def owner(self, entity: str, field_name: str) -> str | None:
        return self.system_of_record.get(entity, {}).get(field_name)


def default_path() -> Path:
    return Path(str(files("revops_pipelines.corrections") / "policy.toml"))


def load_policy(path: Path | str | None = None) -> Policy:
    """The file at `path` (`Settings.policy_path`), else the shipped default."""
    chosen = Path(path or default_path())
    try:
        raw = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise PolicyError(f"{chosen}: {error}") from None
    return parse_policy(raw, source=str(chosen))


def parse_policy(raw: dict[str, Any], *, source: str = "") -> Policy:
    actions = dict(raw.get("actions", {}))
    for code, action in actions.items():
        if action not in ("auto", "review"):
            raise PolicyError(f"{source}: actions.{code} must be auto or review, not {action!r}")
    owners = {entity: dict(fields) for entity, fields in raw.get("system_of_record", {}).items()}
    for entity, fields in owners.items():
        for name, system in fields.items():
            if system not in TARGETS:
                raise PolicyError(f"{source}: system_of_record.{entity}.{name}: {system!r}")
    if "tolerance_minor" in raw:
        # Findings within a tolerance are never raised, so there is nothing to tolerate here.
        raise PolicyError(
            f"{source}: tolerance_minor is no policy key: tolerances are the reconciliation's "
            "(REVOPS_TOLERANCE_MINOR)"
        )
    blast = raw.get("blast_radius", {})
    max_actions = int(blast.get("max_actions", 1000))
    max_share = float(blast.get("max_share", 0.25))
    if max_actions < 0 or not 0 < max_share <= 1:
        raise PolicyError(f"{source}: blast_radius needs max_actions >= 0, 0 < max_share <= 1")
    targets: dict[str, TargetLimits] = {}
    for target in TARGETS:
        limits = raw.get("targets", {}).get(target, {})
        unknown = set(limits) - set(TargetLimits.__dataclass_fields__)
        if unknown:
            raise PolicyError(f"{source}: targets.{target}: unknown keys {sorted(unknown)}")
        targets[target] = TargetLimits(
            rate_per_s=float(limits.get("rate_per_s", 25.0)),
            max_attempts=int(limits.get("max_attempts", 6)),
            concurrency=int(limits.get("concurrency", 1)),
            batch_size=min(200, int(limits.get("batch_size", 1))),
            max_allowance_share=float(limits.get("max_allowance_share", 1.0)),
        )
    return Policy(
        actions=actions,
        system_of_record=owners,
        max_actions=max_actions,
        max_share=max_share,
        targets=targets,
        source=source,
    )
