"""One settings object, read from `REVOPS_*` environment variables.

Every default makes the embedded demo work with no settings at all: files under
`./data/`, the sandbox servers' test credentials.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


def _parse_tolerances(text: str) -> dict[str, int]:
    """`USD=0,JPY=1` → {"USD": 0, "JPY": 1}: tolerance in minor units per currency."""
    tolerances: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        code, _, value = part.partition("=")
        if not value.strip().isdigit():
            raise ValueError(
                f"REVOPS_TOLERANCE_MINOR: {part!r} is not CURRENCY=minor_units (e.g. USD=0)"
            )
        tolerances[code.strip().upper()] = int(value)
    return tolerances


def _parse_share(text: str) -> float:
    try:
        share = float(text)
    except ValueError:
        share = -1.0
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"REVOPS_QUARANTINE_MAX_SHARE: {text!r} is not a share between 0 and 1")
    return share


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    duckdb_path: Path = Path("data/revops.duckdb")
    ledger_url: str = "sqlite:///data/ledger.sqlite"
    output_dir: Path = Path("data/output")
    landing_dir: Path = Path("data/landing")
    sandbox_state_dir: Path = Path("data/sandbox_state")

    crm_url: str = ""
    billing_url: str = ""
    erp_url: str = ""
    crm_client_id: str = "revops-sandbox"
    crm_client_secret: str = "sandbox-secret"
    billing_api_key: str = "sk_test_revops_sandbox"
    erp_token: str = "erp-sandbox-token"
    # Webhook signing secrets: Stripe's `whsec_...` is the HMAC key as written; the
    # Standard Webhooks ones are `whsec_<base64 of the key>`.
    billing_webhook_secret: str = "whsec_revops_sandbox_billing"
    crm_webhook_secret: str = "whsec_cmV2b3BzLXNhbmRib3gtY3JtLXdlYmhvb2tzLWtleSE="
    erp_webhook_secret: str = "whsec_cmV2b3BzLXNhbmRib3gtZXJwLXdlYmhvb2tzLWtleSE="
    webhook_body_limit: int = 1024 * 1024
    landing_sensor_interval_s: int = 30

    crm_rate_limit: float = 50.0
    billing_rate_limit: float = 100.0
    erp_rate_limit: float = 50.0
    # Requests the ERP serves at once for one account (NetSuite: 5 on a standard account).
    erp_max_concurrency: int = 5
    extract_workers: int = 4
    # How long a DuckDB writer waits for another process to let go of the file.
    duckdb_lock_timeout_s: float = 120.0
    max_attempts: int = 6

    tolerance_minor: dict[str, int] = field(default_factory=dict)
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

    def webhook_secrets(self) -> dict[str, str]:
        """The signing secret of each webhook source, by source name."""
        return {
            "billing": self.billing_webhook_secret,
            "crm": self.crm_webhook_secret,
            "erp": self.erp_webhook_secret,
        }

    def tolerance_for(self, currency: str) -> int:
        return self.tolerance_minor.get(currency.upper(), 0)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = Path(env.get("REVOPS_DATA_DIR", "data"))

        def get(name: str, default: str) -> str:
            return env.get(f"REVOPS_{name}", default)

        return cls(
            data_dir=data_dir,
            duckdb_path=Path(get("DUCKDB_PATH", str(data_dir / "revops.duckdb"))),
            ledger_url=get("LEDGER_URL", f"sqlite:///{data_dir / 'ledger.sqlite'}"),
            output_dir=Path(get("OUTPUT_DIR", str(data_dir / "output"))),
            landing_dir=Path(get("LANDING_DIR", str(data_dir / "landing"))),
            sandbox_state_dir=Path(get("SANDBOX_STATE_DIR", str(data_dir / "sandbox_state"))),
            crm_url=get("CRM_URL", ""),
            billing_url=get("BILLING_URL", ""),
            erp_url=get("ERP_URL", ""),
            crm_client_id=get("CRM_CLIENT_ID", cls.crm_client_id),
            crm_client_secret=get("CRM_CLIENT_SECRET", cls.crm_client_secret),
            billing_api_key=get("BILLING_API_KEY", cls.billing_api_key),
            erp_token=get("ERP_TOKEN", cls.erp_token),
            billing_webhook_secret=get("BILLING_WEBHOOK_SECRET", cls.billing_webhook_secret),
            crm_webhook_secret=get("CRM_WEBHOOK_SECRET", cls.crm_webhook_secret),
            erp_webhook_secret=get("ERP_WEBHOOK_SECRET", cls.erp_webhook_secret),
            webhook_body_limit=int(get("WEBHOOK_BODY_LIMIT", str(cls.webhook_body_limit))),
            landing_sensor_interval_s=int(
                get("LANDING_SENSOR_INTERVAL_S", str(cls.landing_sensor_interval_s))
            ),
            crm_rate_limit=float(get("CRM_RATE_LIMIT", str(cls.crm_rate_limit))),
            billing_rate_limit=float(get("BILLING_RATE_LIMIT", str(cls.billing_rate_limit))),
            erp_rate_limit=float(get("ERP_RATE_LIMIT", str(cls.erp_rate_limit))),
            erp_max_concurrency=int(get("ERP_MAX_CONCURRENCY", str(cls.erp_max_concurrency))),
            extract_workers=int(get("EXTRACT_WORKERS", str(cls.extract_workers))),
            max_attempts=int(get("MAX_ATTEMPTS", str(cls.max_attempts))),
            duckdb_lock_timeout_s=float(
                get("DUCKDB_LOCK_TIMEOUT_S", str(cls.duckdb_lock_timeout_s))
            ),
            tolerance_minor=_parse_tolerances(get("TOLERANCE_MINOR", "")),
            name_match_threshold=float(get("NAME_MATCH_THRESHOLD", str(cls.name_match_threshold))),
            as_of=get("AS_OF", ""),
            reporting_currency=get("REPORTING_CURRENCY", cls.reporting_currency).upper(),
            rates_file=Path(get("RATES_FILE", "")) if get("RATES_FILE", "") else None,
            quarantine_max_share=_parse_share(
                get("QUARANTINE_MAX_SHARE", str(cls.quarantine_max_share))
            ),
            subscription_grace_days=int(
                get("SUBSCRIPTION_GRACE_DAYS", str(cls.subscription_grace_days))
            ),
        )
