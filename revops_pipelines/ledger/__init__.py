"""The operational ledger: what was sent where, what failed for good, what people decided.

It lives in a transactional database (SQLite by default, PostgreSQL in production), apart
from the analytical DuckDB store, so a rebuild of the analytics never loses it.
"""

from revops_pipelines.ledger.store import Claim, Ledger, LedgerError, exception_statuses

__all__ = ["Claim", "Ledger", "LedgerError", "exception_statuses"]
