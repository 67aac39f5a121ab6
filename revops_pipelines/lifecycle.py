"""The stages of one customer lifecycle, in order (DRIFT.md "Lifecycle and lineage").

`canonical.lifecycle_event` holds them; the schema, the report's funnel and `revops trace`
all read this one list.
"""

LIFECYCLE_STAGES: tuple[str, ...] = (
    "opportunity_won",
    "subscription_provisioned",
    "invoice_generated",
    "erp_posted",
    "payment_applied",
    "exception_resolved",
)
