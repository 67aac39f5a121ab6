"""Reads the project's SQL model files, orders them by their refs and runs them in DuckDB.

A model is one `.sql` file holding one SELECT. `{{ ref('name') }}`, `{{ source('raw', 'table') }}`
and `{{ var('name') }}` are the only template expressions, so refs can be read without running
anything and the dependency graph is known before any SQL executes.

Staging models are views: each only types and flattens raw JSON for the canonical models, and
writing them to the file cost more than computing them (DuckDB compresses every table it
stores). Canonical and reconciliation models are tables. A `-- materialized: view` or
`-- materialized: table` line in a model file overrides its folder's default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from revops_pipelines.sqlmodels.functions import register_functions


def _package_models_root() -> Path:
    """The package's `sql/` folder, wherever the package is installed (editable or not)."""
    root = resources.files("revops_pipelines") / "sql"
    if not isinstance(root, Path):
        # The loader globs folders; a zipped install has none to glob.
        raise RuntimeError(f"revops_pipelines must be installed as files, not as {root!r}")
    return root


MODELS_ROOT: Path = _package_models_root()
SEEDS_FOLDER = "seeds"

_EXPRESSION = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.DOTALL)
_STRING = r"""(?:'([^']*)'|"([^"]*)")"""
_REF = re.compile(rf"^ref\(\s*{_STRING}\s*\)$")
_SOURCE = re.compile(rf"^source\(\s*{_STRING}\s*,\s*{_STRING}\s*\)$")
_VAR = re.compile(rf"^var\(\s*{_STRING}\s*(?:,\s*(.+?)\s*)?\)$", re.DOTALL)
_MATERIALIZED = re.compile(r"^--\s*materialized:\s*(\w+)\s*$", re.MULTILINE)

MATERIALIZATIONS = ("table", "view")
DEFAULT_MATERIALIZED = {"staging": "view"}

# The raw-table shape extraction writes (docs/DATA_MODEL.md "Raw tables"); used to create an
# empty table for an optional stream nobody extracted, so models over it still run.
RAW_TABLE_COLUMNS = (
    "id VARCHAR, payload JSON, cursor_value VARCHAR, deleted BOOLEAN, api_version VARCHAR, "
    "extracted_at TIMESTAMPTZ, run_id VARCHAR"
)
# Canonical rows refused by their pandera model (written by `schemas.quarantine`); models that
# read it get an empty one where no check has run.
QUARANTINE_SOURCE = ("canonical", "quarantine")
QUARANTINE_COLUMNS = (
    "table_name VARCHAR, source_system VARCHAR, source_id VARCHAR, column_name VARCHAR, "
    "rule VARCHAR, value VARCHAR, quarantined_at TIMESTAMPTZ, linked_billing_id VARCHAR"
)


class SqlModelError(Exception):
    """A model file that cannot be read, ordered or run."""


class TemplateError(SqlModelError):
    def __init__(self, path: Path, expression: str, reason: str) -> None:
        super().__init__(f"{path}: {{{{ {expression} }}}}: {reason}")
        self.path = path
        self.expression = expression


class UnknownRefError(SqlModelError):
    def __init__(self, path: Path, ref: str) -> None:
        super().__init__(f"{path}: ref('{ref}') names no model; add {ref}.sql or fix the name")
        self.path = path
        self.ref = ref


class DuplicateModelError(SqlModelError):
    def __init__(self, name: str, paths: list[Path]) -> None:
        super().__init__(
            f"model name {name!r} is used by {', '.join(map(str, paths))}; names must be unique"
        )
        self.name = name
        self.paths = paths


class ModelCycleError(SqlModelError):
    def __init__(self, cycle: list[str]) -> None:
        super().__init__(f"models reference each other in a cycle: {' → '.join(cycle)}")
        self.cycle = cycle


class MissingVarError(SqlModelError):
    def __init__(self, model: str, name: str) -> None:
        super().__init__(f"model {model!r} uses var('{name}') but no value was given for it")
        self.model = model
        self.name = name


class ModelRunError(SqlModelError):
    def __init__(self, model: str, path: Path, cause: Exception) -> None:
        super().__init__(f"model {model!r} ({path}) failed in DuckDB: {cause}")
        self.model = model
        self.path = path


@dataclass(frozen=True)
class SqlModel:
    name: str
    schema: str
    path: Path
    sql_template: str
    refs: set[str] = field(default_factory=set)
    sources: set[tuple[str, str]] = field(default_factory=set)
    materialized: str = "table"

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.name}"

    def render(
        self,
        models: Mapping[str, SqlModel],
        *,
        vars: Mapping[str, Any] | None = None,
        relations: Mapping[str, str] | None = None,
    ) -> str:
        """The runnable SQL: refs resolved through `models` (or `relations` where it names
        the ref), vars as SQL literals."""
        values = dict(vars or {})
        overrides = relations or {}

        def substitute(match: re.Match[str]) -> str:
            expression = match.group(1)
            kind, args = _parse_expression(self.path, expression)
            if kind == "ref":
                target = models.get(args[0])
                if target is None:
                    raise UnknownRefError(self.path, args[0])
                return overrides.get(target.name, target.relation)
            if kind == "source":
                return f"{args[0]}.{args[1]}"
            name, default = args
            if name in values:
                return sql_literal(values[name])
            if default is not None:
                return default
            raise MissingVarError(self.name, name)

        # A trailing semicolon would end the CREATE TABLE ... AS statement early.
        return _EXPRESSION.sub(substitute, self.sql_template).strip().rstrip(";")


def _string_arg(match: re.Match[str], index: int) -> str:
    single, double = match.group(index), match.group(index + 1)
    return single if single is not None else double


def _parse_expression(path: Path, expression: str) -> tuple[str, tuple[Any, ...]]:
    if m := _REF.match(expression):
        return "ref", (_string_arg(m, 1),)
    if m := _SOURCE.match(expression):
        return "source", (_string_arg(m, 1), _string_arg(m, 3))
    if m := _VAR.match(expression):
        return "var", (_string_arg(m, 1), m.group(3))
    raise TemplateError(path, expression, "only ref(), source() and var() are supported")


def sql_literal(value: Any) -> str:
    """A Python value as a DuckDB literal: numbers bare, strings quoted, None as NULL."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("'", "''")
    return f"'{text}'"


def parse_model(path: Path, *, schema: str | None = None) -> SqlModel:
    template = path.read_text(encoding="utf-8")
    refs: set[str] = set()
    sources: set[tuple[str, str]] = set()
    for match in _EXPRESSION.finditer(template):
        kind, args = _parse_expression(path, match.group(1))
        if kind == "ref":
            refs.add(args[0])
        elif kind == "source":
            sources.add((args[0], args[1]))
    schema = schema or path.parent.name
    header = _MATERIALIZED.search(template)
    materialized = header.group(1) if header else DEFAULT_MATERIALIZED.get(schema, "table")
    if materialized not in MATERIALIZATIONS:
        raise SqlModelError(
            f"{path}: materialized: {materialized} is not one of {', '.join(MATERIALIZATIONS)}"
        )
    return SqlModel(
        name=path.stem,
        schema=schema,
        path=path,
        sql_template=template,
        refs=refs,
        sources=sources,
        materialized=materialized,
    )


def load_models(root: Path = MODELS_ROOT) -> list[SqlModel]:
    """Every `root/<schema>/**/*.sql` except seeds, sorted by name; the schema is the top folder."""
    by_name: dict[str, list[SqlModel]] = {}
    for path in sorted(root.rglob("*.sql")):
        schema = path.relative_to(root).parts[0]
        if schema == SEEDS_FOLDER or path.parent == root:
            continue
        model = parse_model(path, schema=schema)
        by_name.setdefault(model.name, []).append(model)
    for name, found in by_name.items():
        if len(found) > 1:
            raise DuplicateModelError(name, [m.path for m in found])
    return [found[0] for _, found in sorted(by_name.items())]


def order_models(models: Iterable[SqlModel]) -> list[SqlModel]:
    """Topological order by refs; among models ready at the same time, by name."""
    by_name = {m.name: m for m in models}
    for model in by_name.values():
        for ref in sorted(model.refs):
            if ref not in by_name:
                raise UnknownRefError(model.path, ref)

    ordered: list[SqlModel] = []
    state: dict[str, str] = {}  # "visiting" | "done"

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            start = trail.index(name)
            raise ModelCycleError([*trail[start:], name])
        state[name] = "visiting"
        for ref in sorted(by_name[name].refs):
            visit(ref, [*trail, name])
        state[name] = "done"
        ordered.append(by_name[name])

    for name in sorted(by_name):
        visit(name, [])
    return ordered


def upstream_closure(models: Iterable[SqlModel], names: Iterable[str]) -> set[str]:
    """The named models and every model they read, directly or not."""
    by_name = {m.name: m for m in models}
    seen: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(by_name[name].refs)
    return seen


def load_seeds(con: duckdb.DuckDBPyConnection, *, root: Path = MODELS_ROOT) -> dict[str, int]:
    """`root/seeds/*.csv` as `seeds.<stem>` tables, every column typed by DuckDB's sniffer."""
    con.execute("CREATE SCHEMA IF NOT EXISTS seeds")
    counts: dict[str, int] = {}
    for path in sorted((root / SEEDS_FOLDER).glob("*.csv")):
        con.execute(
            f"CREATE OR REPLACE TABLE seeds.{path.stem} AS "
            "SELECT * FROM read_csv(?, header = true, auto_detect = true)",
            [str(path)],
        )
        counts[path.stem] = _count(con, f"seeds.{path.stem}")
    return counts


def ensure_sources(con: duckdb.DuckDBPyConnection, models: Iterable[SqlModel]) -> list[str]:
    """Creates empty tables for sources nobody wrote (optional streams, the quarantine)."""
    created: list[str] = []
    existing = {
        (schema, table)
        for schema, table in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "UNION ALL SELECT schema_name, view_name FROM duckdb_views()"
        ).fetchall()
    }
    for schema, table in sorted({s for m in models for s in m.sources}):
        if (schema, table) in existing:
            continue
        columns = QUARANTINE_COLUMNS if (schema, table) == QUARANTINE_SOURCE else RAW_TABLE_COLUMNS
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        con.execute(f"CREATE TABLE IF NOT EXISTS {schema}.{table} ({columns})")
        created.append(f"{schema}.{table}")
    return created


def run_models(
    con: duckdb.DuckDBPyConnection,
    models: Iterable[SqlModel],
    *,
    select: set[str] | None = None,
    vars: Mapping[str, Any] | None = None,
    root: Path = MODELS_ROOT,
) -> dict[str, int]:
    """Builds each model as its table or view, in ref order; returns row counts by model name.

    `models` is the whole project (refs resolve against it); `select` limits which are built.
    Views read their macros and `normalize_text`, so a connection that queries them needs
    `register_functions` (this function registers them).
    """
    all_models = order_models(models)
    by_name = {m.name: m for m in all_models}
    unknown = sorted((select or set()) - by_name.keys())
    if unknown:
        raise SqlModelError(f"select names unknown models: {', '.join(unknown)}")
    chosen = [m for m in all_models if select is None or m.name in select]

    con.execute("SET TimeZone = 'UTC'")
    # Model tables have no meaningful row order; not keeping it lets DuckDB write in parallel
    # with less memory.
    con.execute("SET preserve_insertion_order = false")
    register_functions(con)
    load_seeds(con, root=root)
    ensure_sources(con, chosen)
    for schema in sorted({m.schema for m in chosen}):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")

    cached = _views_read_twice(chosen)
    # What later models of this run read for a view: its cached temporary table, or its SQL as a
    # subquery, so that it reads the cached tables too.
    relations: dict[str, str] = {}
    temp_tables: list[str] = []
    counts: dict[str, int] = {}
    compression = con.execute("SELECT current_setting('force_compression')").fetchall()[0][0]
    # DuckDB's automatic string compression (dictionary + FSST) cost more CPU than building
    # the models; zstd writes about three times faster for a somewhat larger file.
    con.execute("SET force_compression = 'zstd'")
    try:
        for model in chosen:
            sql = model.render(by_name, vars=vars, relations=relations)
            if model.materialized == "view":
                # The stored view names stored relations only: temporary tables end with the run.
                _build(con, model, model.render(by_name, vars=vars))
                if model.name in cached:
                    relations[model.name] = _cache_view(con, model, sql)
                    temp_tables.append(relations[model.name])
                else:
                    relations[model.name] = f"(\n{sql}\n)"
            else:
                _build(con, model, sql)
            counts[model.name] = _count(con, relations.get(model.name, model.relation))
    finally:
        con.execute(f"SET force_compression = {sql_literal(compression)}")
        for table in temp_tables:
            con.execute(f"DROP TABLE IF EXISTS {table}")
    return counts


def _build(con: duckdb.DuckDBPyConnection, model: SqlModel, sql: str) -> None:
    kind = "VIEW" if model.materialized == "view" else "TABLE"
    con.execute("BEGIN TRANSACTION")
    try:
        # A model that changed from table to view (or back) leaves the other kind behind.
        if _existing_kind(con, model) not in (None, kind):
            con.execute(f"DROP {'TABLE' if kind == 'VIEW' else 'VIEW'} {model.relation}")
        con.execute(f"CREATE OR REPLACE {kind} {model.relation} AS\n{sql}")
        con.execute("COMMIT")
    except duckdb.Error as error:
        con.execute("ROLLBACK")
        raise ModelRunError(model.name, model.path, error) from error


def _existing_kind(con: duckdb.DuckDBPyConnection, model: SqlModel) -> str | None:
    rows = con.execute(
        "SELECT 'TABLE' FROM duckdb_tables() WHERE schema_name = ? AND table_name = ? "
        "AND database_name = current_database() "
        "UNION ALL SELECT 'VIEW' FROM duckdb_views() WHERE schema_name = ? AND view_name = ? "
        "AND database_name = current_database()",
        [model.schema, model.name, model.schema, model.name],
    ).fetchall()
    return rows[0][0] if rows else None


def _views_read_twice(chosen: list[SqlModel]) -> set[str]:
    """Views that more than one model of this run reads: computed once into a temporary table."""
    readers: dict[str, int] = {}
    for model in chosen:
        for ref in model.refs:
            readers[ref] = readers.get(ref, 0) + 1
    return {m.name for m in chosen if m.materialized == "view" and readers.get(m.name, 0) > 1}


def _cache_view(con: duckdb.DuckDBPyConnection, model: SqlModel, sql: str) -> str:
    # A temporary table lives in memory (spilling past memory_limit) and is not compressed into
    # the file; it is dropped when the run ends.
    table = f"{model.schema}__{model.name}"
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS\n{sql}")
    except duckdb.Error as error:
        raise ModelRunError(model.name, model.path, error) from error
    return f"temp.main.{table}"


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    # fetchall, not fetchone: DuckDB keeps a half-read result open and refuses the next query.
    rows = con.execute(f"SELECT count(*) FROM {relation}").fetchall()
    return int(rows[0][0])
