"""The drift-code table in docs/DRIFT_CODES.md says what the catalog seed says."""

from pathlib import Path

from revops_pipelines.reconciliation.catalog import drift_codes

DOC = Path(__file__).parent.parent / "docs" / "DRIFT_CODES.md"


def _doc_codes() -> dict[str, tuple[str, str, str]]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`") and cells[0].endswith("`"):
            rows[cells[0].strip("`")] = (cells[1], cells[2], cells[3])
    return rows


def test_the_docs_list_every_code_with_its_entity_severity_and_action():
    catalog = {c.drift_type: (c.entity, c.severity, c.action) for c in drift_codes().values()}
    assert _doc_codes() == catalog
