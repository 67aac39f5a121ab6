"""Resources: the three source clients and the DuckDB file, configured from `REVOPS_*`.

`dg.load_defs` takes a module's single `dg.Definitions` object as that module's
contribution, so the resources are bound here under the keys `crm`, `billing`,
`erp` and `duckdb`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb

from revops_pipelines import duckdb_file
from revops_pipelines.connectors.billing import BillingClient
from revops_pipelines.connectors.crm import CrmClient
from revops_pipelines.connectors.erp import ErpClient
from revops_pipelines.settings import Settings


class CrmResource(dg.ConfigurableResource):
    """The CRM (Salesforce REST subset), OAuth client credentials."""

    url: str
    client_id: str
    client_secret: str
    rate_limit: float = Settings.crm_rate_limit
    max_attempts: int = Settings.max_attempts
    workers: int = Settings.extract_workers

    def client(self) -> CrmClient:
        return CrmClient(
            self.url,
            client_id=self.client_id,
            client_secret=self.client_secret,
            rate_limit=self.rate_limit,
            max_attempts=self.max_attempts,
            workers=self.workers,
        )


class BillingResource(dg.ConfigurableResource):
    """The billing system (Stripe API subset), secret key."""

    url: str
    api_key: str
    rate_limit: float = Settings.billing_rate_limit
    max_attempts: int = Settings.max_attempts
    workers: int = Settings.extract_workers

    def client(self) -> BillingClient:
        return BillingClient(
            self.url,
            api_key=self.api_key,
            rate_limit=self.rate_limit,
            max_attempts=self.max_attempts,
            workers=self.workers,
        )


class ErpResource(dg.ConfigurableResource):
    """The ERP (NetSuite REST subset), bearer token."""

    url: str
    token: str
    rate_limit: float = Settings.erp_rate_limit
    max_concurrency: int = Settings.erp_max_concurrency
    max_attempts: int = Settings.max_attempts
    workers: int = Settings.extract_workers

    def client(self) -> ErpClient:
        return ErpClient(
            self.url,
            token=self.token,
            rate_limit=self.rate_limit,
            max_concurrency=self.max_concurrency,
            max_attempts=self.max_attempts,
            workers=self.workers,
        )


class DuckDBResource(dg.ConfigurableResource):
    """The analytical DuckDB file. Runs execute their steps in one process (`executor.py`);
    a file held by another process is waited for up to `lock_timeout_s`."""

    path: str
    lock_timeout_s: float = Settings.duckdb_lock_timeout_s

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if not read_only:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with duckdb_file.connect(
            self.path, read_only=read_only, lock_timeout_s=self.lock_timeout_s
        ) as con:
            yield con


def _env(name: str, default: str) -> str | dg.EnvVar:
    """A secret or URL read at run time when set; the demo default otherwise."""
    return dg.EnvVar(name) if name in os.environ else default


def build_resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    settings = settings or Settings.from_env()
    workers = settings.extract_workers
    attempts = settings.max_attempts
    return {
        "crm": CrmResource(
            url=_env("REVOPS_CRM_URL", settings.crm_url),
            client_id=_env("REVOPS_CRM_CLIENT_ID", settings.crm_client_id),
            client_secret=_env("REVOPS_CRM_CLIENT_SECRET", settings.crm_client_secret),
            rate_limit=settings.crm_rate_limit,
            max_attempts=attempts,
            workers=workers,
        ),
        "billing": BillingResource(
            url=_env("REVOPS_BILLING_URL", settings.billing_url),
            api_key=_env("REVOPS_BILLING_API_KEY", settings.billing_api_key),
            rate_limit=settings.billing_rate_limit,
            max_attempts=attempts,
            workers=workers,
        ),
        "erp": ErpResource(
            url=_env("REVOPS_ERP_URL", settings.erp_url),
            token=_env("REVOPS_ERP_TOKEN", settings.erp_token),
            rate_limit=settings.erp_rate_limit,
            max_concurrency=settings.erp_max_concurrency,
            max_attempts=attempts,
            workers=workers,
        ),
        "duckdb": DuckDBResource(
            path=_env("REVOPS_DUCKDB_PATH", str(settings.duckdb_path)),
            lock_timeout_s=settings.duckdb_lock_timeout_s,
        ),
    }


defs = dg.Definitions(resources=build_resources())
