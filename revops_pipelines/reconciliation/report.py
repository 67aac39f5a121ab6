"""The reconciliation report: one self-contained HTML file, and the figures Dagster shows.

Charts are inline SVG drawn by the Jinja template from the numbers computed here; the
exception list travels as JSON inside the page and is drawn a page at a time, so the file
opens offline with nothing external to load and stays quick with many thousand rows.
Every figure comes from the one reading of the exceptions and from this run's metrics.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from jinja2 import Environment, FileSystemLoader, select_autoescape

from revops_pipelines.reconciliation.catalog import SEVERITIES, drift_codes, relation_exists
from revops_pipelines.reconciliation.exceptions import STATUSES
from revops_pipelines.reconciliation.metrics import DELAY_BUCKETS, METRICS_TABLE, compute_metrics
from revops_pipelines.reconciliation.money import Rates, load_rates
from revops_pipelines.reconciliation.reading import (
    ExceptionReading,
    exception_rows,
    read_exceptions,
)
from revops_pipelines.schemas.canonical import LIFECYCLE_STAGES

TEMPLATES = Path(__file__).parent / "templates"
SEVERITY_COLORS = {"critical": "#a4161a", "high": "#e07a1f", "medium": "#e9c46a", "low": "#9aa3b2"}
DEFAULT_REPORTING_CURRENCY = "USD"
ID_LENGTH = 14  # ids longer than this are shortened in the table, full on hover and copy


def _records(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def run_metrics(
    con: duckdb.DuckDBPyConnection, *, now: datetime, rates: Rates
) -> dict[tuple[str, str], float]:
    """This run's metrics: the rows `record_metrics` wrote at `now`, else computed here."""
    if relation_exists(con, "reconciliation", "metrics_history"):
        rows = con.execute(
            f"SELECT metric, dimension, value FROM {METRICS_TABLE} WHERE run_at = ?", [now]
        ).fetchall()
        if rows:
            return {(m, d): float(v) for m, d, v in rows}
    return {(m.metric, m.dimension): m.value for m in compute_metrics(con, now=now, rates=rates)}


def _bar_chart(
    title: str,
    values: list[tuple[str, float]],
    *,
    text: dict[str, str] | None = None,
    note: str = "",
) -> dict[str, Any]:
    rows = [
        {
            "label": label,
            "segments": [{"value": value, "color": "#2f6fb0", "name": "", "text": f"{value:g}"}],
            "total_text": (text or {}).get(label, f"{value:g}"),
        }
        for label, value in values
    ]
    return {
        "title": title,
        "note": note,
        "rows": rows if any(v for _, v in values) else [],
        "max": max((v for _, v in values), default=0),
        "legend": [],
        "label_width": max([len(label) for label, _ in values] + [6]) * 6 + 12,
        "value_width": max([len(r["total_text"]) for r in rows] + [4]) * 7 + 10,
    }


def _by_type_chart(reading: ExceptionReading) -> dict[str, Any]:
    rows = [
        {
            "label": drift_type,
            "segments": [
                {"value": by_sev[s], "color": c, "name": s, "text": str(by_sev[s])}
                for s, c in SEVERITY_COLORS.items()
                if by_sev.get(s)
            ],
            "total_text": str(reading.by_type[drift_type]),
        }
        for drift_type in reading.by_type
        for by_sev in [reading.by_type_severity[drift_type]]
    ]
    return {
        "title": "Open findings by type and severity",
        "note": "",
        "rows": rows,
        "max": max(reading.by_type.values(), default=0),
        "legend": [{"name": s, "color": c} for s, c in SEVERITY_COLORS.items()],
        "label_width": max([len(t) for t in reading.by_type] + [6]) * 6 + 12,
        "value_width": 40,
    }


def _money_chart(reading: ExceptionReading, rates: Rates) -> dict[str, Any]:
    """Bars in the reporting currency (one axis), labelled with the native amount beside it."""
    per_currency: dict[str, int] = {}
    for r in reading.rows:
        if r["reporting_minor"] is not None:
            per_currency[r["currency"]] = per_currency.get(r["currency"], 0) + r["reporting_minor"]
    exponent = 10 ** rates.exponent(rates.reporting)
    ordered = sorted(per_currency, key=lambda c: (-per_currency[c], c))
    text = {
        c: f"{rates.text(per_currency[c], rates.reporting)}"
        f"  ({rates.text(reading.money_at_stake[c], c)})"
        for c in ordered
    }
    missing = ", ".join(rates.text(v, c) for c, v in reading.unconverted.items())
    return _bar_chart(
        f"Money at stake by currency, in {rates.reporting} (native amount in brackets)",
        [(c, per_currency[c] / exponent) for c in ordered],
        text=text,
        note=f"no {rates.reporting} rate for: {missing}" if missing else "",
    )


def trend_chart(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    history: list[tuple[datetime, float]] = []
    if relation_exists(con, "reconciliation", "metrics_history"):
        history = con.execute(
            f"SELECT run_at, sum(value) FROM {METRICS_TABLE} "
            "WHERE metric = 'open_exceptions_by_age' GROUP BY run_at ORDER BY run_at"
        ).fetchall()
    width, height, left, right = 520, 190, 48, 56
    top = max((v for _, v in history), default=0) or 1
    span = width - left - right
    step = span / max(len(history) - 1, 1)
    # At most six dated ticks, the last one always, so many runs never crowd the axis.
    every = max(1, -(-len(history) // 6))
    points = [
        {
            "x": left + (i * step if len(history) > 1 else span / 2),
            "y": (height - 34) - (value / top) * (height - 52),
            "value": f"{value:g}",
            "label": run_at.astimezone(UTC).strftime("%m-%d %H:%M"),
            "tick": i == len(history) - 1 or (i % every == 0 and len(history) - 1 - i >= every),
        }
        for i, (run_at, value) in enumerate(history)
    ]
    return {
        "title": "Open exceptions across runs, by the data's as-of moment",
        "note": (
            "one as-of moment so far: a run on a later as-of date adds the next point"
            if len(points) == 1
            else ""
        ),
        "points": points,
        "width": width,
        "height": height,
        "left": left,
        "max_text": f"{top:g}",
    }


def _funnel_chart(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Lifecycles reaching each stage, for the stages the lifecycle model produces."""
    counts: dict[str, int] = {}
    if relation_exists(con, "canonical", "lifecycle_event"):
        counts = dict(
            con.execute(
                "SELECT stage, count(DISTINCT correlation_id) FROM canonical.lifecycle_event "
                "GROUP BY stage"
            ).fetchall()
        )
    return _bar_chart(
        "Lifecycle funnel (lifecycles reaching each stage)",
        [(s, float(counts[s])) for s in LIFECYCLE_STAGES if s in counts],
    )


def _delay_chart(metrics: dict[tuple[str, str], float]) -> dict[str, Any]:
    return _bar_chart(
        "Quote-to-cash delay, days from won to paid",
        [(f"{k} d", metrics.get(("quote_to_cash_histogram", k), 0.0)) for k in DELAY_BUCKETS],
    )


def _short(value: str | None) -> str:
    if not value or len(value) <= ID_LENGTH:
        return value or ""
    return value[: ID_LENGTH - 5] + "…" + value[-4:]


def _value_text(value: str | None, r: dict[str, Any], rates: Rates) -> str:
    if value is None:
        return ""
    code = drift_codes().get(r["drift_type"])
    if code and code.money_values and r["currency"]:
        try:
            return rates.text(int(value), r["currency"])
        except ValueError:
            return value
    return value


def table_row(r: dict[str, Any], rates: Rates) -> dict[str, Any]:
    """One exception as the table draws it: texts to show, numbers to sort by."""
    ids = [
        {"system": system, "id": r[column], "short": _short(r[column])}
        for system, column in (("CRM", "crm_id"), ("billing", "billing_id"), ("ERP", "erp_id"))
        if r[column]
    ]
    return {
        "id": r["exception_id"],
        "type": r["drift_type"],
        "sev": r["severity"],
        "rank": SEVERITIES.index(r["severity"]) if r["severity"] in SEVERITIES else 9,
        "status": r["status"],
        "open": bool(r["is_open"]),
        "stake": r["reporting_minor"],
        "stake_text": rates.text(r["reporting_minor"], rates.reporting),
        "native": (
            r["at_stake_minor"] / 10 ** rates.exponent(r["currency"])
            if r["at_stake_minor"] is not None
            else None
        ),
        "native_text": rates.text(r["at_stake_minor"], r["currency"]),
        "age": r["age_days"],
        "action": r["action"],
        "todo": r["suggested_action"] or "",
        "ids": ids,
        "field": r["field"] or "",
        "expected": _value_text(r["expected"], r, rates),
        "actual": _value_text(r["actual"], r, rates),
    }


def not_reconciled(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Records held back before reconciliation: raw records that broke the contract and
    canonical rows their pandera model refused, counted by where and why."""
    groups: list[dict[str, Any]] = []
    if relation_exists(con, "raw", "_quarantine"):
        groups += _records(
            con,
            "SELECT 'raw' AS layer, stream AS source, reason, count(*) AS records, "
            "max(extracted_at) AS latest FROM raw._quarantine GROUP BY ALL",
        )
    if relation_exists(con, "canonical", "quarantine"):
        groups += _records(
            con,
            "SELECT 'canonical' AS layer, table_name || ' (' || source_system || ')' AS source, "
            "coalesce(column_name || ': ', '') || rule AS reason, count(*) AS records, "
            "max(quarantined_at) AS latest FROM canonical.quarantine GROUP BY ALL",
        )
    groups.sort(key=lambda g: (-g["records"], g["layer"], g["source"], g["reason"]))
    for g in groups:
        g["latest"] = g["latest"].strftime("%Y-%m-%d %H:%M") if g["latest"] else ""
    return groups


def _kpis(
    reading: ExceptionReading, metrics: dict[tuple[str, str], float], rates: Rates, resolved: int
) -> list[dict[str, str]]:
    as_of = reading.as_of.strftime("%Y-%m-%d")
    kpis = [
        {
            "name": "Open exceptions",
            "value": f"{reading.open_total:,}",
            "definition": f"Findings open or planned on {as_of}: not yet corrected, "
            "resolved or ignored.",
        },
        {
            "name": "Critical",
            "value": f"{reading.by_severity.get('critical', 0):,}",
            "definition": "Open findings where money is posted wrong or twice.",
        },
        {
            "name": "Need review",
            "value": f"{reading.review:,}",
            "definition": "Open findings a person must decide; the others have an "
            "automatic correction.",
        },
        {
            "name": f"At stake ({rates.reporting})",
            "value": rates.text(reading.at_stake_reporting_minor or 0, rates.reporting),
            "definition": f"Money of the open findings that carry an amount, in "
            f"{rates.reporting} at the {rates.as_of_text()}"
            + (
                f"; without a rate: {len(reading.unconverted)} currencies"
                if reading.unconverted
                else ""
            )
            + ".",
        },
    ]
    # From this run's metrics, shown when the run has them.
    for metric, name, shown, definition in (
        (
            ("invoice_accuracy", "share"),
            "Invoice accuracy",
            lambda share: f"{share * 100:.2f} %",
            "Finalized billing invoices with no invoice, payment or customer finding in this "
            "run, as a share of all finalized invoices.",
        ),
        (
            ("quote_to_cash_days", "p50"),
            "Quote to cash (median)",
            lambda days: f"{days:.1f} d",
            "Days from the won opportunity to its first applied payment, over the lifecycles "
            "that reached both.",
        ),
    ):
        value = metrics.get(metric)
        if value is not None:
            kpis.append({"name": name, "value": shown(value), "definition": definition})
    kpis.append(
        {
            "name": "Resolved so far",
            "value": f"{resolved:,}",
            "definition": "Findings seen in an earlier run that no longer appear.",
        }
    )
    return kpis


def report_context(
    con: duckdb.DuckDBPyConnection,
    *,
    now: datetime,
    run_at: datetime | None = None,
    rates: Rates | None = None,
) -> dict[str, Any]:
    """Everything the template shows. `now` is the as-of moment ages count to; `run_at` the
    moment the report is made."""
    rates = rates or load_rates(con, DEFAULT_REPORTING_CURRENCY, on=now.date())
    reading = read_exceptions(con, as_of=now, rates=rates)
    metrics = run_metrics(con, now=now, rates=rates)
    rows = exception_rows(con, as_of=now, rates=rates, open_only=False)
    resolved = sum(1 for r in rows if r["status"] == "resolved")
    return {
        "as_of": now.astimezone(UTC).strftime("%Y-%m-%d"),
        "generated_at": (run_at or datetime.now(UTC))
        .astimezone(UTC)
        .strftime("%Y-%m-%d %H:%M UTC"),
        "reporting_currency": rates.reporting,
        "rates_text": f"{rates.as_of_text()} ({rates.source})",
        "kpis": _kpis(reading, metrics, rates, resolved),
        "summary": {
            "open": reading.open_total,
            "review": reading.review,
            "critical": reading.by_severity.get("critical", 0),
            "resolved": resolved,
            "at_stake_text": rates.text(reading.at_stake_reporting_minor or 0, rates.reporting),
        },
        "charts": {
            "by_type": _by_type_chart(reading),
            "money": _money_chart(reading, rates),
            "aging": _bar_chart(
                "Open exceptions by age (whole days since first detection)",
                [(k, float(v)) for k, v in reading.aging.items()],
            ),
            "trend": trend_chart(con),
            "funnel": _funnel_chart(con),
            "delay": _delay_chart(metrics),
        },
        "not_reconciled": not_reconciled(con),
        "table": {
            "rows": [table_row(r, rates) for r in rows],
            "codes": {c.drift_type: c.meaning for c in drift_codes().values()},
            "reporting": rates.reporting,
        },
        "row_count": len(rows),
        "drift_types": sorted({r["drift_type"] for r in rows}),
        "severities": SEVERITIES,
        "statuses": STATUSES,
    }


def render_report(
    con: duckdb.DuckDBPyConnection,
    out_path: Path,
    *,
    now: datetime | None = None,
    rates: Rates | None = None,
) -> Path:
    """Writes the HTML report to `out_path` (through a temporary name) and returns the path."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = env.get_template("report.html.j2").render(
        **report_context(con, now=(now or datetime.now(UTC)), rates=rates)
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(out_path)
    return out_path


def report_metadata(
    con: duckdb.DuckDBPyConnection,
    *,
    now: datetime | None = None,
    rates: Rates | None = None,
    top: int = 10,
) -> dict[str, Any]:
    """Plain values for an asset's metadata: counts, money at stake (numbers and text), and a
    markdown list of the most urgent open findings, money in the reporting currency."""
    now = now or datetime.now(UTC)
    rates = rates or load_rates(con, DEFAULT_REPORTING_CURRENCY, on=now.date())
    reading = read_exceptions(con, as_of=now, rates=rates)
    return {
        "open_exceptions": reading.open_total,
        "review": reading.review,
        "by_severity": reading.by_severity,
        "by_type": reading.by_type,
        "money_at_stake_minor": reading.money_at_stake,
        "money_at_stake_text": {c: rates.text(v, c) for c, v in reading.money_at_stake.items()},
        "reporting_currency": rates.reporting,
        "at_stake_reporting_minor": reading.at_stake_reporting_minor or 0,
        "at_stake_reporting_text": rates.text(
            reading.at_stake_reporting_minor or 0, rates.reporting
        ),
        "rates": rates.as_of_text(),
        "top_markdown": findings_markdown(reading.rows[:top], rates),
    }


def findings_markdown(rows: list[dict[str, Any]], rates: Rates) -> str:
    """Findings as a markdown table: drift type, severity, ids, money, suggested action."""
    lines = [
        f"| drift type | severity | ids | at stake ({rates.reporting}) | native "
        "| suggested action |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ids = " ".join(x for x in (r["crm_id"], r["billing_id"], r["erp_id"]) if x)
        action = (r["suggested_action"] or "").replace("|", "/")
        lines.append(
            f"| {r['drift_type']} | {r['severity']} | {ids} "
            f"| {rates.text(r['reporting_minor'], rates.reporting)} "
            f"| {rates.text(r['at_stake_minor'], r['currency'])} | {action} |"
        )
    return "\n".join(lines)
