"""Each system's client built from the settings: the one place that pairs a system with its
URL, credentials and limits."""

from __future__ import annotations

from typing import Any

from revops_pipelines.connectors.base import BaseClient
from revops_pipelines.connectors.billing import BillingClient, BillingWriter
from revops_pipelines.connectors.crm import CrmClient, CrmWriter
from revops_pipelines.connectors.erp import ErpClient, ErpWriter
from revops_pipelines.settings import Settings

SYSTEMS = ("crm", "billing", "erp")


def client_from_settings(
    settings: Settings, system: str, *, writer: bool = False, **options: Any
) -> BaseClient:
    """`system`'s reading client, or its writer; `options` (rate_limit, max_attempts,
    max_concurrency, workers) replace the settings' limits, as the pusher's policy does."""
    limits: dict[str, Any] = {
        "max_attempts": settings.max_attempts,
        "workers": settings.extract_workers,
    }
    if system == "crm":
        kind, url = (CrmWriter if writer else CrmClient), settings.crm_url
        limits |= {
            "client_id": settings.crm_client_id,
            "client_secret": settings.crm_client_secret,
            "rate_limit": settings.crm_rate_limit,
        }
    elif system == "billing":
        kind, url = (BillingWriter if writer else BillingClient), settings.billing_url
        limits |= {"api_key": settings.billing_api_key, "rate_limit": settings.billing_rate_limit}
    elif system == "erp":
        kind, url = (ErpWriter if writer else ErpClient), settings.erp_url
        limits |= {
            "token": settings.erp_token,
            "rate_limit": settings.erp_rate_limit,
            "max_concurrency": settings.erp_max_concurrency,
        }
    else:
        raise ValueError(f"unknown system {system!r}, use one of {SYSTEMS}")
    return kind(url, **(limits | options))
