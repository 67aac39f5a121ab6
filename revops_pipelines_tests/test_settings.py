from pathlib import Path

import pytest

from revops_pipelines.settings import Settings


def test_defaults_live_under_data_dir():
    settings = Settings.from_env({"REVOPS_DATA_DIR": "elsewhere"})
    assert settings.duckdb_path == Path("elsewhere/revops.duckdb")
    assert settings.ledger_url == "sqlite:///elsewhere/ledger.sqlite"


def test_tolerances_are_per_currency_in_minor_units():
    settings = Settings.from_env({"REVOPS_TOLERANCE_MINOR": "usd=2, JPY=0"})
    assert settings.tolerance_for("USD") == 2
    assert settings.tolerance_for("jpy") == 0
    assert settings.tolerance_for("EUR") == 0


def test_bad_tolerance_names_the_variable():
    with pytest.raises(ValueError, match="REVOPS_TOLERANCE_MINOR"):
        Settings.from_env({"REVOPS_TOLERANCE_MINOR": "USD=one"})
