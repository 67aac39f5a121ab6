"""One asset per SQL model (staging, canonical, reconciliation), with pandera checks.

Canonical tables carry a blocking pandera check, so nothing downstream reads a table that
failed it; the master-data validation rules are non-blocking checks on `validation_issue`.
"""

from pathlib import Path

import dagster as dg

from revops_pipelines.schemas import CANONICAL_SCHEMAS, markdown_table, validate_table
from revops_pipelines.settings import Settings
from revops_pipelines.sqlmodels import MODELS_ROOT, SqlModel, load_models, run_models
from revops_pipelines.validation import VALIDATION_RULES, issue_counts, issues_for

PREVIEW_ROWS = 5
VALIDATION_MODEL = "validation_issue"


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
    from revops_pipelines.recon.run import vars_from_settings

    return vars_from_settings(settings)


def _check_specs(model: SqlModel, key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    specs = []
    if model.schema == "canonical" and model.name in CANONICAL_SCHEMAS:
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


def _check_results(model: SqlModel, con: object) -> list[dg.AssetCheckResult]:
    results = []
    if model.schema == "canonical" and model.name in CANONICAL_SCHEMAS:
        outcome = validate_table(con, model.name)
        results.append(
            dg.AssetCheckResult(
                check_name="pandera",
                passed=outcome.passed,
                metadata={
                    "failures": outcome.failures,
                    "sample": dg.MetadataValue.md(outcome.sample_markdown or "no failures"),
                },
            )
        )
    if model.name == VALIDATION_MODEL:
        for rule, count in issue_counts(con).items():
            sample = markdown_table(issues_for(con, rule)) if count else "no issues"
            results.append(
                dg.AssetCheckResult(
                    check_name=rule,
                    passed=count == 0,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"issues": count, "sample": dg.MetadataValue.md(sample)},
                )
            )
    return results


def build_model_asset(model: SqlModel, models: list[SqlModel]) -> dg.AssetsDefinition:
    by_name = {m.name: m for m in models}
    key = model_key(model)
    deps = [model_key(by_name[ref]) for ref in sorted(model.refs) if ref in by_name]
    deps += [dg.AssetKey([schema, table]) for schema, table in sorted(model.sources)]

    @dg.asset(
        key=key,
        deps=deps,
        group_name=model.schema,
        pool="duckdb",
        kinds={"duckdb", "sql"},
        description=model_description(model),
        check_specs=_check_specs(model, key),
        required_resource_keys={"duckdb"},
        metadata={"sql_file": f"dbt_like_sql/{model.schema}/{model.path.name}"},
    )
    def _model(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        with context.resources.duckdb.connect() as con:
            counts = run_models(
                con, models, select={model.name}, vars=model_vars(Settings.from_env())
            )
            preview = con.execute(f"SELECT * FROM {model.relation} LIMIT {PREVIEW_ROWS}").df()
            checks = _check_results(model, con)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": counts[model.name],
                "preview": dg.MetadataValue.md(markdown_table(preview) or "(no rows)"),
            },
            check_results=checks,
        )

    return _model


def build_model_assets(root: Path = MODELS_ROOT) -> list[dg.AssetsDefinition]:
    """An asset for every model under `root` except seeds."""
    models = load_models(root)
    return [build_model_asset(model, models) for model in models]


model_assets = build_model_assets()
