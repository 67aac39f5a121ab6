from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from revops_pipelines.sqlmodels import (
    MODELS_ROOT,
    MissingVarError,
    ModelCycleError,
    ModelRunError,
    TemplateError,
    UnknownRefError,
    load_models,
    order_models,
    run_models,
    sql_literal,
    upstream_closure,
)


def write_models(root: Path, files: dict[str, str]) -> Path:
    for relative, sql in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql)
    return root


def test_load_models_reads_refs_sources_and_schema(tmp_path: Path) -> None:
    root = write_models(
        tmp_path,
        {
            "staging/stg_a.sql": "select id from {{ source('raw', 'crm_account') }}",
            "canonical/b.sql": "select * from {{ ref('stg_a') }} join {{ref(\"c\")}} using (id)",
            "canonical/c.sql": "select 1 as id",
            "seeds/ignored.sql": "select 1",
        },
    )
    models = {m.name: m for m in load_models(root)}
    assert set(models) == {"stg_a", "b", "c"}
    assert models["stg_a"].schema == "staging"
    assert models["stg_a"].sources == {("raw", "crm_account")}
    assert models["b"].refs == {"stg_a", "c"}
    assert models["b"].schema == "canonical"


def test_order_models_follows_refs_then_names(tmp_path: Path) -> None:
    root = write_models(
        tmp_path,
        {
            "s/z_first.sql": "select 1 as x",
            "s/a_last.sql": "select * from {{ ref('m_middle') }}",
            "s/m_middle.sql": "select * from {{ ref('z_first') }}",
            "s/b_free.sql": "select 2 as x",
        },
    )
    names = [m.name for m in order_models(load_models(root))]
    assert names.index("z_first") < names.index("m_middle") < names.index("a_last")
    assert names == ["z_first", "m_middle", "a_last", "b_free"]


def test_cycle_is_named(tmp_path: Path) -> None:
    root = write_models(
        tmp_path,
        {
            "s/a.sql": "select * from {{ ref('b') }}",
            "s/b.sql": "select * from {{ ref('a') }}",
        },
    )
    with pytest.raises(ModelCycleError) as caught:
        order_models(load_models(root))
    assert caught.value.cycle == ["a", "b", "a"]
    assert "a → b → a" in str(caught.value)


def test_unknown_ref_names_file_and_ref(tmp_path: Path) -> None:
    root = write_models(tmp_path, {"s/a.sql": "select * from {{ ref('nope') }}"})
    with pytest.raises(UnknownRefError) as caught:
        order_models(load_models(root))
    assert caught.value.ref == "nope"
    assert caught.value.path.name == "a.sql"
    assert "nope" in str(caught.value) and "a.sql" in str(caught.value)


def test_unsupported_expression_is_refused(tmp_path: Path) -> None:
    root = write_models(tmp_path, {"s/a.sql": "select {{ config(materialized='view') }}"})
    with pytest.raises(TemplateError):
        load_models(root)


@pytest.mark.parametrize(
    ("value", "literal"),
    [(3, "3"), (2.5, "2.5"), ("it's", "'it''s'"), (None, "NULL"), (True, "TRUE")],
)
def test_sql_literal(value: object, literal: str) -> None:
    assert sql_literal(value) == literal


def test_var_rendering_and_default(tmp_path: Path) -> None:
    root = write_models(
        tmp_path,
        {
            "s/v.sql": (
                "select {{ var('n') }} as n, {{ var('s') }} as s, {{ var('missing') }} as m, "
                "{{ var('d', 30) }} as d;"
            )
        },
    )
    con = duckdb.connect()
    run_models(con, load_models(root), vars={"n": 7, "s": "o'k", "missing": None})
    assert con.execute("select n, s, m, d from s.v").fetchone() == (7, "o'k", None, 30)
    with pytest.raises(MissingVarError):
        run_models(con, load_models(root), vars={"n": 1, "s": "x"})


def test_run_models_builds_tables_in_order_and_select(tmp_path: Path) -> None:
    root = write_models(
        tmp_path,
        {
            "staging/stg.sql": "select id, payload->>'$.n' as n from {{ source('raw', 't') }}",
            "canonical/top.sql": "select count(*) as c from {{ ref('stg') }}",
        },
    )
    con = duckdb.connect()
    con.execute("create schema raw")
    con.execute("create table raw.t as select 'a' as id, '{\"n\": 1}'::JSON as payload")
    counts = run_models(con, load_models(root))
    assert counts == {"stg": 1, "top": 1}
    con.execute("insert into raw.t values ('b', '{\"n\": 2}')")
    assert run_models(con, load_models(root), select={"stg"}) == {"stg": 2}
    assert con.execute("select c from canonical.top").fetchone() == (1,)
    # the seeds ship with the project and are loaded on every run
    exponents = dict(
        con.execute("select currency, exponent from seeds.currency_exponents").fetchall()
    )
    assert (exponents["JPY"], exponents["USD"], exponents["KWD"]) == (0, 2, 3)


def test_missing_source_becomes_empty_raw_table(tmp_path: Path) -> None:
    root = write_models(tmp_path, {"s/a.sql": "select id from {{ source('raw', 'absent') }}"})
    con = duckdb.connect()
    assert run_models(con, load_models(root)) == {"a": 0}


def test_failed_model_keeps_previous_table(tmp_path: Path) -> None:
    root = write_models(tmp_path, {"s/a.sql": "select 1 as x"})
    con = duckdb.connect()
    run_models(con, load_models(root))
    (tmp_path / "s" / "a.sql").write_text("select x from no_such_table")
    with pytest.raises(ModelRunError) as caught:
        run_models(con, load_models(root))
    assert caught.value.model == "a"
    assert con.execute("select x from s.a").fetchone() == (1,)


def test_upstream_closure(tmp_path: Path) -> None:
    root = write_models(
        tmp_path,
        {"s/a.sql": "select 1", "s/b.sql": "{{ ref('a') }}", "s/c.sql": "{{ ref('b') }}"},
    )
    assert upstream_closure(load_models(root), ["c"]) == {"a", "b", "c"}


def test_project_models_load_and_order() -> None:
    models = order_models(load_models(MODELS_ROOT))
    assert {m.schema for m in models} <= {"staging", "canonical", "reconciliation", "validation"}


def test_staging_models_are_views_and_a_header_overrides(tmp_path: Path) -> None:
    root = write_models(
        tmp_path,
        {
            "staging/stg.sql": "select 1 as x",
            "canonical/top.sql": "-- materialized: view\nselect x from {{ ref('stg') }}",
            "canonical/kept.sql": "select x from {{ ref('stg') }}",
        },
    )
    models = {m.name: m for m in load_models(root)}
    assert (models["stg"].materialized, models["top"].materialized) == ("view", "view")
    assert models["kept"].materialized == "table"
    con = duckdb.connect()
    assert run_models(con, load_models(root)) == {"stg": 1, "kept": 1, "top": 1}
    views = {name for (name,) in con.execute("select view_name from duckdb_views()").fetchall()}
    assert {"stg", "top"} <= views
    # a model that turns from view into table replaces the view
    (tmp_path / "canonical" / "top.sql").write_text("select 2 as x")
    run_models(con, load_models(root))
    assert con.execute("select x from canonical.top").fetchone() == (2,)


def test_views_still_answer_after_the_run_drops_its_cached_tables(tmp_path: Path) -> None:
    root = write_models(
        tmp_path / "models",
        {
            "staging/stg.sql": "select 1 as x",
            "staging/stg_twice.sql": "select x + 1 as x from {{ ref('stg') }}",
            "canonical/a.sql": "select x from {{ ref('stg_twice') }}",
            "canonical/b.sql": (
                "select x from {{ ref('stg_twice') }} union all select x from {{ ref('stg') }}"
            ),
        },
    )
    with duckdb.connect(str(tmp_path / "db.duckdb")) as con:
        assert run_models(con, load_models(root)) == {"stg": 1, "stg_twice": 1, "a": 1, "b": 2}
    with duckdb.connect(str(tmp_path / "db.duckdb")) as con:
        assert con.execute("select x from staging.stg_twice").fetchall() == [(2,)]
        assert sorted(con.execute("select x from canonical.b").fetchall()) == [(1,), (2,)]
