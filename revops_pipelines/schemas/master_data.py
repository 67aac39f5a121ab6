"""Master-data rules: problems in the canonical tables found before reconciliation runs.

Beside the pandera models, which check each row alone, these rules check records against each
other (hierarchies, catalogs, mappings). They are SQL (`sql/canonical/validation_issue.sql`) so
other layers can join the issues; this module names the rules and reads their results.
"""

from __future__ import annotations

import duckdb
import pandas as pd

VALIDATION_RULES: dict[str, str] = {
    "account_parent_missing": "a CRM account's parent account exists",
    "account_hierarchy_cycle": "CRM account hierarchies have no cycles",
    "legal_entity_missing": "every CRM account has a legal entity",
    "legal_entity_unmapped": "every legal entity maps to an ERP subsidiary",
    "tax_jurisdiction_missing": "every CRM account has a tax jurisdiction",
    "sku_unaligned": "every SKU on an opportunity or invoice is in all three catalogs",
    "contract_term_missing": "closed-won opportunities have a contract term",
    "contract_start_missing": "closed-won opportunities have a contract with a start date",
    "record_quarantined": "every canonical record passes its pandera model (else it is "
    "quarantined and not reconciled)",
}
ISSUES_TABLE = "canonical.validation_issue"


def issue_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Issues per rule, every rule present (0 when clean)."""
    rows = con.execute(f"SELECT rule, count(*) FROM {ISSUES_TABLE} GROUP BY rule").fetchall()
    found = {rule: int(count) for rule, count in rows}
    return {rule: found.get(rule, 0) for rule in VALIDATION_RULES}


def issues_for(con: duckdb.DuckDBPyConnection, rule: str, *, limit: int = 10) -> pd.DataFrame:
    return con.execute(
        f"SELECT entity, source_system, source_id, field, detail FROM {ISSUES_TABLE} "
        "WHERE rule = ? ORDER BY source_system, source_id LIMIT ?",
        [rule, limit],
    ).df()
