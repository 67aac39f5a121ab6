"""pandera models of the canonical tables (docs/DATA_MODEL.md "Canonical tables").

They guard what reconciliation and corrections read: keys present and unique, money in integer
minor units, ISO currencies the project knows the exponent of, statuses from each system's
vocabulary, timestamps in UTC and in a plausible range. Columns are coerced to one dtype first,
because DuckDB hands a column over as a different pandas dtype when it is all NULL.
"""

from __future__ import annotations

import csv
from functools import cache

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from revops_pipelines.sqlmodels import MODELS_ROOT

SOURCE_SYSTEMS = ["crm", "billing", "erp"]
BILLING_INVOICE_STATUSES = ["draft", "open", "paid", "void", "uncollectible"]
SUBSCRIPTION_STATUSES = [
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
]
PAYMENT_STATUSES = ["open", "paid", "canceled"]
# The stages of one customer lifecycle, in order (DRIFT.md "Lifecycle and lineage"):
# `canonical.lifecycle_event` holds them, the report's funnel and `revops trace` read them.
LIFECYCLE_STAGES: tuple[str, ...] = (
    "opportunity_won",
    "subscription_provisioned",
    "invoice_generated",
    "erp_posted",
    "payment_applied",
    "exception_resolved",
)
EARLIEST = pd.Timestamp("1990-01-01", tz="UTC")
LATEST = pd.Timestamp("2100-01-01", tz="UTC")


@cache
def iso_currencies() -> frozenset[str]:
    """The currency codes of the project's exponent seed (ISO 4217 active codes)."""
    with (MODELS_ROOT / "seeds" / "currency_exponents.csv").open(encoding="utf-8") as rows:
        return frozenset(row["currency"] for row in csv.DictReader(rows))


def _text(*, nullable: bool = True, isin: list[str] | None = None) -> object:
    return pa.Field(nullable=nullable, coerce=True, isin=isin)


def _money(*, nullable: bool = False) -> object:
    return pa.Field(nullable=nullable, coerce=True)


def _timestamp(*, nullable: bool = True) -> object:
    return pa.Field(
        nullable=nullable,
        coerce=True,
        ge=EARLIEST,
        lt=LATEST,
        dtype_kwargs={"unit": "us", "tz": "UTC"},
    )


def _date(*, nullable: bool = True) -> object:
    return pa.Field(
        nullable=nullable, coerce=True, ge=EARLIEST.tz_localize(None), lt=LATEST.tz_localize(None)
    )


class _Keyed(pa.DataFrameModel):
    source_system: Series[pd.StringDtype] = _text(nullable=False, isin=SOURCE_SYSTEMS)
    source_id: Series[pd.StringDtype] = _text(nullable=False)

    class Config:
        strict = False
        unique = ["source_system", "source_id"]


class _Priced(pa.DataFrameModel):
    currency: Series[pd.StringDtype] = pa.Field(
        nullable=False, coerce=True, str_matches=r"^[A-Z]{3}$"
    )

    # The method's name is the check's name (pandera forgets a `name=` on inherited checks).
    @pa.check("currency")
    def currency_in_iso_4217_seed(cls, currency: Series[str]) -> Series[bool]:
        return currency.isin(iso_currencies())


class Customer(_Keyed):
    crm_account_id: Series[pd.StringDtype] = _text()
    billing_customer_id: Series[pd.StringDtype] = _text()
    erp_customer_id: Series[pd.StringDtype] = _text()
    name: Series[pd.StringDtype] = _text()
    name_norm: Series[pd.StringDtype] = _text()
    email: Series[pd.StringDtype] = _text()
    email_norm: Series[pd.StringDtype] = _text()
    country: Series[pd.StringDtype] = pa.Field(
        nullable=True, coerce=True, str_matches=r"^[A-Z]{2}$"
    )
    currency: Series[pd.StringDtype] = pa.Field(
        nullable=True, coerce=True, str_matches=r"^[A-Z]{3}$"
    )
    legal_entity: Series[pd.StringDtype] = _text()
    tax_jurisdiction: Series[pd.StringDtype] = _text()
    is_deleted: Series[pd.BooleanDtype] = pa.Field(nullable=False, coerce=True)
    is_active: Series[pd.BooleanDtype] = pa.Field(nullable=False, coerce=True)
    created_at: Series[pd.DatetimeTZDtype] = _timestamp()
    updated_at: Series[pd.DatetimeTZDtype] = _timestamp()


class Product(_Keyed):
    sku: Series[pd.StringDtype] = _text()
    name: Series[pd.StringDtype] = _text()
    is_active: Series[pd.BooleanDtype] = pa.Field(nullable=False, coerce=True)
    is_deleted: Series[pd.BooleanDtype] = pa.Field(nullable=False, coerce=True)
    billing_product_id: Series[pd.StringDtype] = _text()


class Contract(_Keyed):
    account_id: Series[pd.StringDtype] = _text()
    stage: Series[pd.StringDtype] = _text()
    is_closed: Series[pd.BooleanDtype] = pa.Field(nullable=False, coerce=True)
    is_won: Series[pd.BooleanDtype] = pa.Field(nullable=False, coerce=True)
    close_date: Series[pa.DateTime] = _date()
    amount_minor: Series[pd.Int64Dtype] = _money(nullable=True)
    currency: Series[pd.StringDtype] = pa.Field(
        nullable=True, coerce=True, str_matches=r"^[A-Z]{3}$"
    )
    term_months: Series[pd.Int64Dtype] = pa.Field(nullable=True, coerce=True, ge=0)
    mrr_minor: Series[float] = pa.Field(nullable=True, coerce=True)
    contract_status: Series[pd.StringDtype] = _text(
        isin=["Draft", "In Approval Process", "Activated", "Terminated", "Expired"]
    )
    start_date: Series[pa.DateTime] = _date()
    end_date: Series[pa.DateTime] = _date()
    is_deleted: Series[pd.BooleanDtype] = pa.Field(nullable=False, coerce=True)


def _quantity() -> object:
    return pa.Field(nullable=True, coerce=True, ge=0)


class ContractLine(_Keyed, _Priced):
    opportunity_id: Series[pd.StringDtype] = _text(nullable=False)
    sku: Series[pd.StringDtype] = _text()
    quantity: Series[float] = _quantity()
    unit_price_minor: Series[pd.Int64Dtype] = _money(nullable=True)
    total_price_minor: Series[pd.Int64Dtype] = _money(nullable=True)
    is_deleted: Series[pd.BooleanDtype] = pa.Field(nullable=False, coerce=True)


class Subscription(_Keyed, _Priced):
    customer_id: Series[pd.StringDtype] = _text(nullable=False)
    status: Series[pd.StringDtype] = _text(nullable=False, isin=SUBSCRIPTION_STATUSES)
    created_at: Series[pd.DatetimeTZDtype] = _timestamp(nullable=False)
    mrr_minor: Series[float] = pa.Field(nullable=False, coerce=True, ge=0)


class SubscriptionItem(_Keyed, _Priced):
    subscription_id: Series[pd.StringDtype] = _text(nullable=False)
    quantity: Series[float] = _quantity()
    unit_amount_minor: Series[pd.Int64Dtype] = _money(nullable=True)
    interval: Series[pd.StringDtype] = _text(isin=["day", "week", "month", "year"])
    monthly_amount_minor: Series[float] = pa.Field(nullable=True, coerce=True)


class Invoice(_Keyed, _Priced):
    # Reconciliation joins on this link as it is: it must arrive trimmed and non-blank.
    billing_invoice_id: Series[pd.StringDtype] = pa.Field(
        nullable=True, coerce=True, str_matches=r"^\S(.*\S)?$"
    )
    customer_id: Series[pd.StringDtype] = _text()
    status: Series[pd.StringDtype] = _text(nullable=False, isin=BILLING_INVOICE_STATUSES)
    subtotal_minor: Series[pd.Int64Dtype] = _money()
    tax_minor: Series[pd.Int64Dtype] = _money()
    total_minor: Series[pd.Int64Dtype] = _money()
    amount_remaining_minor: Series[pd.Int64Dtype] = _money(nullable=True)
    invoice_date: Series[pa.DateTime] = _date()
    is_finalized: Series[pd.BooleanDtype] = pa.Field(nullable=False, coerce=True)
    created_at: Series[pd.DatetimeTZDtype] = _timestamp()
    finalized_at: Series[pd.DatetimeTZDtype] = _timestamp()
    paid_at: Series[pd.DatetimeTZDtype] = _timestamp()


class InvoiceLine(_Keyed, _Priced):
    invoice_id: Series[pd.StringDtype] = _text(nullable=False)
    line_number: Series[pd.Int64Dtype] = pa.Field(nullable=False, coerce=True, ge=1)
    sku: Series[pd.StringDtype] = _text()
    quantity: Series[float] = _quantity()
    amount_minor: Series[pd.Int64Dtype] = _money()
    period_start: Series[pd.DatetimeTZDtype] = _timestamp()
    period_end: Series[pd.DatetimeTZDtype] = _timestamp()


class Payment(_Keyed, _Priced):
    billing_payment_id: Series[pd.StringDtype] = _text()
    invoice_id: Series[pd.StringDtype] = _text()
    amount_minor: Series[pd.Int64Dtype] = _money()
    status: Series[pd.StringDtype] = _text(nullable=False, isin=PAYMENT_STATUSES)
    paid_at: Series[pd.DatetimeTZDtype] = _timestamp()

    class Config:
        unique = ["source_system", "source_id", "invoice_id"]


class CreditNote(_Keyed, _Priced):
    total_minor: Series[pd.Int64Dtype] = _money()
    created_at: Series[pd.DatetimeTZDtype] = _timestamp()


class RevenueEvent(_Priced):
    source_system: Series[pd.StringDtype] = _text(nullable=False, isin=SOURCE_SYSTEMS)
    invoice_id: Series[pd.StringDtype] = _text(nullable=False)
    invoice_line_id: Series[pd.StringDtype] = _text(nullable=False)
    month: Series[pa.DateTime] = _date(nullable=False)
    amount_minor: Series[pd.Int64Dtype] = _money()

    class Config:
        strict = False
        unique = ["source_system", "invoice_line_id", "month"]


class CustomerXref(pa.DataFrameModel):
    xref_id: Series[pd.StringDtype] = pa.Field(nullable=False, coerce=True, unique=True)
    crm_account_id: Series[pd.StringDtype] = _text()
    billing_customer_id: Series[pd.StringDtype] = _text()
    erp_customer_id: Series[pd.StringDtype] = _text()
    link_method: Series[pd.StringDtype] = _text(nullable=False, isin=["link", "none"])

    class Config:
        strict = False


class LegalEntitySubsidiary(pa.DataFrameModel):
    subsidiary_id: Series[pd.StringDtype] = pa.Field(nullable=False, coerce=True, unique=True)
    legal_entity: Series[pd.StringDtype] = _text(nullable=False)
    origin: Series[pd.StringDtype] = _text(nullable=False, isin=["erp", "override"])

    class Config:
        strict = False


class LifecycleEvent(pa.DataFrameModel):
    correlation_id: Series[pd.StringDtype] = _text(nullable=False)
    stage: Series[pd.StringDtype] = _text(nullable=False, isin=list(LIFECYCLE_STAGES))
    system: Series[pd.StringDtype] = _text(nullable=False, isin=SOURCE_SYSTEMS)
    record_id: Series[pd.StringDtype] = _text(nullable=False)
    occurred_at: Series[pd.DatetimeTZDtype] = _timestamp()

    class Config:
        strict = False


class ValidationIssue(pa.DataFrameModel):
    rule: Series[pd.StringDtype] = _text(nullable=False)
    entity: Series[pd.StringDtype] = _text(nullable=False)
    source_system: Series[pd.StringDtype] = _text(nullable=False, isin=SOURCE_SYSTEMS)
    source_id: Series[pd.StringDtype] = _text(nullable=False)

    class Config:
        strict = False


CANONICAL_SCHEMAS: dict[str, type[pa.DataFrameModel]] = {
    "customer": Customer,
    "product": Product,
    "contract": Contract,
    "contract_line": ContractLine,
    "subscription": Subscription,
    "subscription_item": SubscriptionItem,
    "invoice": Invoice,
    "invoice_line": InvoiceLine,
    "payment": Payment,
    "credit_note": CreditNote,
    "revenue_event": RevenueEvent,
    "customer_xref": CustomerXref,
    "legal_entity_subsidiary": LegalEntitySubsidiary,
    "lifecycle_event": LifecycleEvent,
    "validation_issue": ValidationIssue,
}
