"""The SQL models (staging, canonical, reconciliation) as assets, with pandera checks.

Every model is its own asset, but one step builds many of them with few `run_models` calls:
staging models are views, and the loader computes a view that several models read only once
per call, so a step per model would parse the raw payloads again for every canonical table.

Canonical tables carry a blocking pandera check: the rows it refuses are quarantined and the
others go on, and only above a share of refused rows (`quarantine_max_share`) does it fail, so
nothing downstream reads a table whose mapping is broken. Inside a step this is kept by
building in layers (`model_layers`); a model reading the quarantine comes after every check.
The master-data validation rules are non-blocking checks on `validation_issue`.
"""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from revops_pipelines.defs.conventions import sql_reference
from revops_pipelines.defs.schedules import RECONCILIATION_FRESHNESS
from revops_pipelines.schemas import CANONICAL_SCHEMAS, markdown_table, quarantine_table
from revops_pipelines.schemas.master_data import VALIDATION_RULES, issue_counts, issues_for
from revops_pipelines.settings import Settings
from revops_pipelines.sqlmodels import (
    MODELS_ROOT,
    QUARANTINE_SOURCE,
    SqlModel,
    load_models,
    order_models,
    run_models,
)

PREVIEW_ROWS = 5
VALIDATION_MODEL = "validation_issue"
STEPS = {
    "canonical_models": ("staging", "canonical"),
    "reconciliation_models": ("reconciliation",),
}


def model_key(model: SqlModel) -> dg.AssetKey:
    return dg.AssetKey([model.schema, model.name])


def model_description(model: SqlModel) -> str:
    """The file's leading `--` comment, else where the SQL lives."""
    lines = []
    for line in model.sql_template.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line.removeprefix("--").strip())
    return " ".join(lines) or f"SQL model {model.schema}/{model.name}."


def model_vars(settings: Settings) -> dict[str, object]:
    from revops_pipelines.reconciliation.run import vars_from_settings

    return vars_from_settings(settings)


def has_pandera_check(model: SqlModel) -> bool:
    return model.schema == "canonical" and model.name in CANONICAL_SCHEMAS


def reads_quarantine(model: SqlModel) -> bool:
    return QUARANTINE_SOURCE in model.sources


def model_layers(selected: list[SqlModel], models: list[SqlModel]) -> list[list[SqlModel]]:
    """`selected` in batches built one after the other, each in ref order: a model that reads
    a table with a pandera check comes in a later batch, after that check has run, and a model
    that reads the quarantine comes after every other check (each check writes to it)."""
    by_name = {m.name: m for m in models}
    names = {m.name for m in selected}
    ordered = [m for m in order_models(models) if m.name in names]
    layer = dict.fromkeys(names, 0)
    changed = True
    while changed:
        changed = False
        for model in ordered:
            need = max(
                (layer[r] + has_pandera_check(by_name[r]) for r in model.refs if r in layer),
                default=0,
            )
            if reads_quarantine(model):
                need = max(
                    [need]
                    + [
                        layer[m.name] + 1
                        for m in ordered
                        if has_pandera_check(m) and not reads_quarantine(m)
                    ]
                )
            if need > layer[model.name]:
                layer[model.name] = need
                changed = True
    layers: list[list[SqlModel]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for model in order_models(models):
        if model.name in layer:
            layers[layer[model.name]].append(model)
    return layers


def _spec(model: SqlModel, by_name: dict[str, SqlModel]) -> dg.AssetSpec:
    deps = [model_key(by_name[ref]) for ref in sorted(model.refs) if ref in by_name]
    deps += [
        dg.AssetKey([schema, table])
        for schema, table in sorted(model.sources)
        if (schema, table) != QUARANTINE_SOURCE
    ]
    if reads_quarantine(model):
        # The quarantine is written by every canonical table's pandera check.
        deps += [model_key(m) for m in by_name.values() if has_pandera_check(m) and m != model]
    metadata = {"dagster/table_name": model.relation, **sql_reference(model.path)}
    if has_pandera_check(model):
        metadata["dagster/column_schema"] = column_schema(model.name)
    return dg.AssetSpec(
        model_key(model),
        deps=deps,
        group_name=model.schema,
        kinds={"duckdb", "sql", model.materialized}
        | ({"pandera"} if has_pandera_check(model) else set()),
        description=model_description(model),
        metadata=metadata,
        freshness_policy=RECONCILIATION_FRESHNESS if model.schema == "reconciliation" else None,
        # Not built when a table it reads failed its pandera check.
        skippable=True,
    )


def column_schema(name: str) -> dg.TableSchema:
    """The columns of canonical table `name` as its pandera model states them."""
    schema = CANONICAL_SCHEMAS[name].to_schema()
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                column,
                type=str(spec.dtype),
                constraints=dg.TableColumnConstraints(
                    nullable=spec.nullable,
                    unique=spec.unique,
                    other=[check.error or check.name for check in spec.checks],
                ),
            )
            for column, spec in schema.columns.items()
        ],
        constraints=dg.TableConstraints(
            other=[f"unique ({', '.join(schema.unique)})"] if schema.unique else []
        ),
    )


def _check_specs(model: SqlModel) -> list[dg.AssetCheckSpec]:
    key = model_key(model)
    specs = []
    if has_pandera_check(model):
        specs.append(
            dg.AssetCheckSpec(
                "pandera",
                asset=key,
                blocking=True,
                description=f"canonical.{model.name} matches its pandera model",
            )
        )
    if model.name == VALIDATION_MODEL:
        specs += [
            dg.AssetCheckSpec(rule, asset=key, description=text)
            for rule, text in VALIDATION_RULES.items()
        ]
    return specs


def _check_results(
    model: SqlModel, con: object, selected: set[dg.AssetCheckKey], settings: Settings
) -> list[dg.AssetCheckResult]:
    key = model_key(model)
    results = []
    if dg.AssetCheckKey(key, "pandera") in selected:
        outcome = quarantine_table(con, model.name, max_share=settings.quarantine_max_share)
        results.append(
            dg.AssetCheckResult(
                asset_key=key,
                check_name="pandera",
                passed=outcome.passed,
                metadata={
                    "failures": outcome.failures,
                    "quarantined_rows": outcome.quarantined,
                    "quarantined_share": float(outcome.share),
                    "max_share": float(outcome.max_share),
                    "sample": dg.MetadataValue.md(outcome.sample_markdown or "no failures"),
                },
            )
        )
    if model.name == VALIDATION_MODEL:
        for rule, count in issue_counts(con).items():
            if dg.AssetCheckKey(key, rule) not in selected:
                continue
            sample = markdown_table(issues_for(con, rule)) if count else "no issues"
            results.append(
                dg.AssetCheckResult(
                    asset_key=key,
                    check_name=rule,
                    passed=count == 0,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"issues": count, "sample": dg.MetadataValue.md(sample)},
                )
            )
    return results


def _materialized(
    model: SqlModel, con: object, rows: int, checks: list[dg.AssetCheckResult]
) -> dg.MaterializeResult:
    for check in checks:
        if check.check_name == "pandera":
            rows -= check.metadata["quarantined_rows"].value
    preview = con.execute(f"SELECT * FROM {model.relation} LIMIT {PREVIEW_ROWS}").df()
    return dg.MaterializeResult(
        asset_key=model_key(model),
        metadata={
            "dagster/row_count": rows,
            "preview": dg.MetadataValue.md(markdown_table(preview) or "(no rows)"),
        },
        check_results=checks,
    )


def build_models_asset(
    name: str, step_models: list[SqlModel], models: list[SqlModel]
) -> dg.AssetsDefinition:
    """One subsettable step for `step_models`; `models` is the whole project (refs)."""
    by_name = {m.name: m for m in models}

    @dg.multi_asset(
        name=name,
        specs=[_spec(m, by_name) for m in step_models],
        check_specs=[spec for m in step_models for spec in _check_specs(m)],
        can_subset=True,
        pool="duckdb",
        required_resource_keys={"duckdb", "settings"},
    )
    def _models(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult]:
        selected = [m for m in step_models if model_key(m) in context.selected_asset_keys]
        checks = set(context.selected_asset_check_keys)
        settings = context.resources.settings.get()
        vars = model_vars(settings)
        blocked: set[str] = set()
        with context.resources.duckdb.connect() as con:
            for layer in model_layers(selected, models):
                ready = []
                for model in layer:
                    if model.refs & blocked:
                        blocked.add(model.name)
                    else:
                        ready.append(model)
                if not ready:
                    continue
                counts = run_models(con, models, select={m.name for m in ready}, vars=vars)
                for model in ready:
                    results = _check_results(model, con, checks, settings)
                    if any(not r.passed and r.check_name == "pandera" for r in results):
                        blocked.add(model.name)
                    yield _materialized(model, con, counts[model.name], results)
        skipped = sorted(m.name for m in selected if m.name in blocked and m.refs & blocked)
        if skipped:
            context.log.warning(f"not built, they read a table that failed its check: {skipped}")

    return _models


def build_model_assets(root: Path = MODELS_ROOT) -> list[dg.AssetsDefinition]:
    """The two model steps over every model under `root` except seeds."""
    models = load_models(root)
    return [
        build_models_asset(name, [m for m in models if m.schema in schemas], models)
        for name, schemas in STEPS.items()
    ]


model_assets = build_model_assets()
