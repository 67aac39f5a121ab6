"""One settings object: every name and default of the project's configuration, each read from
the environment variable `REVOPS_<NAME>`.

Every default makes the embedded demo work with no settings at all: files under
`./data/`, the sandbox servers' test credentials. The command line reads it with
`Settings.from_env()`; the Dagster code location hands the same values to its assets
through one resource (`defs/resources.py`), so the launchpad shows them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import pydantic
from pydantic.dataclasses import dataclass

SECRET = "secret"
# A value the Dagster resource reads from the environment at run time and never shows.
Secret = Annotated[str, SECRET]
# Paths whose default lies under `data_dir`: moving the data directory moves them all.
UNDER_DATA_DIR = {
    "duckdb_path": "revops.duckdb",
    "output_dir": "output",
    "landing_dir": "landing",
    "sandbox_state_dir": "sandbox_state",
}


def env_name(field: str) -> str:
    return f"REVOPS_{field.upper()}"


def _parse_tolerances(text: str) -> dict[str, int]:
    """`USD=0,JPY=1` → {"USD": 0, "JPY": 1}: tolerance in minor units per currency."""
    tolerances: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        code, _, value = part.partition("=")
        if not value.strip().isdigit():
            raise ValueError(f"{part!r} is not CURRENCY=minor_units (e.g. USD=0)")
        tolerances[code.strip().upper()] = int(value)
    return tolerances


@dataclass(frozen=True)
class Settings:
    """The project's configuration; pydantic turns the environment's text into each field's type."""

    data_dir: Path = Path("data")
    duckdb_path: Path = Path("data/revops.duckdb")
    ledger_url: Secret = "sqlite:///data/ledger.sqlite"
    output_dir: Path = Path("data/output")
    landing_dir: Path = Path("data/landing")
    sandbox_state_dir: Path = Path("data/sandbox_state")

    crm_url: str = ""
    billing_url: str = ""
    erp_url: str = ""
    crm_client_id: str = "revops-sandbox"
    crm_client_secret: Secret = "sandbox-secret"
    billing_api_key: Secret = "sk_test_revops_sandbox"
    erp_token: Secret = "erp-sandbox-token"
    # Webhook signing secrets: Stripe's `whsec_...` is the HMAC key as written; the
    # Standard Webhooks ones are `whsec_<base64 of the key>`.
    billing_webhook_secret: Secret = "whsec_revops_sandbox_billing"
    crm_webhook_secret: Secret = "whsec_cmV2b3BzLXNhbmRib3gtY3JtLXdlYmhvb2tzLWtleSE="
    erp_webhook_secret: Secret = "whsec_cmV2b3BzLXNhbmRib3gtZXJwLXdlYmhvb2tzLWtleSE="
    webhook_body_limit: int = 1024 * 1024
    landing_sensor_interval_s: int = 30
    # The push sensor's interval (the demo sets a few seconds).
    push_sensor_interval_s: int = 30

    crm_rate_limit: float = 50.0
    billing_rate_limit: float = 100.0
    erp_rate_limit: float = 50.0
    # Requests the ERP serves at once for one account (NetSuite: 5 on a standard account).
    erp_max_concurrency: int = 5
    extract_workers: int = 4
    # How long a DuckDB writer waits for another process to let go of the file.
    duckdb_lock_timeout_s: float = 120.0
    max_attempts: int = 6

    tolerance_minor: dict[str, int] = dataclasses.field(default_factory=dict)
    name_match_threshold: float = 0.92
    subscription_grace_days: int = 30
    # Above this share of refused rows a canonical table's pandera check fails (and blocks what
    # reads it); below it the refused rows are quarantined and the others reconciled.
    quarantine_max_share: float = 0.01
    # The moment the data describes (a date, `YYYY-MM-DD`); "now" is the end of that day.
    # Empty means the current time. The demo sets it from the sandbox manifest.
    as_of: str = ""
    # Totals, charts and sorting of money use this currency; rates come from the ERP's
    # currencyrate records unless a rates file (base_currency,currency,rate,effective_date)
    # is named.
    reporting_currency: str = "USD"
    rates_file: Path | None = None
    # Which drift is corrected how, caps and targets; empty: the one shipped in the package.
    policy_path: Path | None = None

    def webhook_secrets(self) -> dict[str, str]:
        """The signing secret of each webhook source, by source name."""
        return {
            "billing": self.billing_webhook_secret,
            "crm": self.crm_webhook_secret,
            "erp": self.erp_webhook_secret,
        }

    def tolerance_for(self, currency: str) -> int:
        return self.tolerance_minor.get(currency.upper(), 0)

    @pydantic.field_validator("tolerance_minor", mode="before")
    @classmethod
    def _tolerances(cls, value: object) -> object:
        return _parse_tolerances(value) if isinstance(value, str) else value

    @pydantic.field_validator("quarantine_max_share")
    @classmethod
    def _share(cls, value: float) -> float:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{value} is not a share between 0 and 1")
        return value

    @pydantic.field_validator("reporting_currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return value.upper()

    @pydantic.field_validator("rates_file", "policy_path", mode="before")
    @classmethod
    def _rates_file(cls, value: object) -> object:
        return value or None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Each field from `REVOPS_<NAME>` when set, else its default; the paths of
        `UNDER_DATA_DIR` and the ledger follow `REVOPS_DATA_DIR`."""
        env = os.environ if env is None else env
        values: dict[str, object] = {
            f.name: env[env_name(f.name)]
            for f in dataclasses.fields(cls)
            if env_name(f.name) in env
        }
        data_dir = Path(values.get("data_dir", cls.data_dir))
        for name, leaf in UNDER_DATA_DIR.items():
            values.setdefault(name, data_dir / leaf)
        values.setdefault("ledger_url", f"sqlite:///{data_dir / 'ledger.sqlite'}")
        try:
            return cls(**values)
        except pydantic.ValidationError as error:
            raise ValueError(
                "; ".join(
                    f"{env_name(str(e['loc'][0]))}={e['input']!r}: {e['msg']}"
                    for e in error.errors()
                )
            ) from None


def secret_fields() -> list[str]:
    """The fields typed `Secret`."""
    return [name for name, info in Settings.__pydantic_fields__.items() if SECRET in info.metadata]
