"""The package as a user gets it: a wheel installed in a new virtualenv, run from elsewhere.

The wheel is built from a copy of the sources and installed without `-e`, so nothing can be read
from this checkout: the SQL models, seeds and report template must ship inside the package.
Dependencies come from a local wheel folder in the user's cache (filled once through pip's usual
index, so later runs install offline), pinned by constraints.txt as in `make`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
WHEELHOUSE = CACHE / "revops_pipelines" / "wheelhouse"
CONSTRAINTS = ROOT / "constraints.txt"


def _run(*args: str | Path, cwd: Path | None = None, env: dict | None = None, timeout: int = 300):
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _pip(*args: str | Path, offline: bool = True):
    where = ("--no-index", "--find-links", WHEELHOUSE) if offline else ()
    return _run(sys.executable, "-m", "pip", "--disable-pip-version-check", *args, *where)


def _build_and_install(source: Path, dist: Path, venv: Path) -> None:
    _pip("wheel", "--no-deps", "--wheel-dir", dist, source)
    (wheel,) = dist.glob("revops_pipelines-*.whl")
    _pip("--python", venv / "bin" / "python", "install", "--no-compile", "-c", CONSTRAINTS, wheel)


@pytest.mark.slow
def test_wheel_installed_in_a_new_venv_generates_and_reconciles(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "revops_pipelines",
        source / "revops_pipelines",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    try:
        try:
            _build_and_install(source, tmp_path / "dist", venv)
        except AssertionError:
            # The wheel folder lacks something (first run, or a new pin): fill it, then again.
            WHEELHOUSE.mkdir(parents=True, exist_ok=True)
            _pip("download", "-q", "-d", WHEELHOUSE, "-c", CONSTRAINTS, "setuptools>=77", source,
                 offline=False)  # fmt: skip
            _build_and_install(source, tmp_path / "dist", venv)
        _check_installed(venv, tmp_path / "elsewhere")
    finally:
        shutil.rmtree(venv, ignore_errors=True)


def _check_installed(venv: Path, cwd: Path) -> None:
    cwd.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REVOPS_", "DAGSTER_", "PYTHON", "VIRTUAL_ENV"))
    }
    env |= {"REVOPS_DATA_DIR": str(cwd / "data"), "DAGSTER_HOME": str(cwd / "dagster_home")}
    python, revops = venv / "bin" / "python", venv / "bin" / "revops"

    where = _run(
        python,
        "-c",
        "import importlib.util, json, revops_pipelines;"
        "from revops_pipelines.sqlmodels import MODELS_ROOT;"
        "print(json.dumps([revops_pipelines.__file__, str(MODELS_ROOT),"
        " importlib.util.find_spec('revops_pipelines_tests') is None]))",
        cwd=cwd,
        env=env,
    )
    package, models, no_tests = json.loads(where.stdout)
    site = (venv / "lib").resolve()
    assert Path(package).resolve().is_relative_to(site), package
    assert Path(models).resolve().is_relative_to(site) and Path(models, "seeds").is_dir()
    assert no_tests, "revops_pipelines_tests must not be installed"

    state = cwd / "data" / "sandbox_state"
    _run(revops, "sandbox", "generate", "--out", state, "--customers", "30", "--months", "2",
         "--seed", "5", "--drift-rate", "0.1", cwd=cwd, env=env)  # fmt: skip
    demo = _run(revops, "demo", "--customers", "30", "--months", "2", cwd=cwd, env=env)
    assert "reusing the scenario" in demo.stdout
    # the ledger's migrations and the corrections policy ship with the package
    assert "revision" in _run(revops, "ledger", "upgrade", cwd=cwd, env=env).stdout
    assert "dry run" in _run(revops, "corrections", "plan", cwd=cwd, env=env).stdout
    # the Dagster CLI finds the code location by module, in the instance the demo set up
    dagster = venv / "bin" / "dagster"
    _run(dagster, "definitions", "validate", "-m", "revops_pipelines.definitions", cwd=cwd, env=env)

    output = cwd / "data" / "output"
    assert "</html>" in (output / "report.html").read_text(encoding="utf-8")
    with duckdb.connect(str(cwd / "data" / "revops.duckdb"), read_only=True) as con:
        invoices = con.execute("SELECT count(*) FROM canonical.invoice").fetchone()[0]
        findings = con.execute("SELECT count(*) FROM reconciliation.findings").fetchone()[0]
        seeded = con.execute("SELECT count(*) FROM seeds.currency_exponents").fetchone()[0]
    assert invoices > 0 and findings > 0 and seeded > 0
    exported = (output / "drift_exceptions.csv").read_text(encoding="utf-8").splitlines()
    assert exported[0].startswith("exception_id") and len(exported) > 1
