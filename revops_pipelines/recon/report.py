"""The reconciliation report: one self-contained HTML file, and the figures Dagster shows.

Charts are inline SVG drawn by the Jinja template from the numbers computed here, so the
file opens offline with nothing external to load.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from jinja2 import Environment, FileSystemLoader, select_autoescape

from revops_pipelines.lifecycle import LIFECYCLE_STAGES
from revops_pipelines.recon.catalog import relation_exists
from revops_pipelines.recon.exceptions import EXCEPTIONS_TABLE, STATUSES
from revops_pipelines.recon.metrics import (
    AGE_BUCKETS,
    DELAY_BUCKETS,
    METRICS_TABLE,
    invoice_accuracy,
    quote_to_cash_days,
)

TEMPLATES = Path(__file__).parent / "templates"
SEVERITY_COLORS = {"critical": "#a4161a", "high": "#e07a1f", "medium": "#e9c46a", "low": "#9aa3b2"}
OPEN = "status IN ('open', 'planned')"
COLUMNS = (
    ("id", "text"),
    ("code", "text"),
    ("severity", "text"),
    ("status", "text"),
    ("CRM id", "text"),
    ("billing id", "text"),
    ("ERP id", "text"),
    ("field", "text"),
    ("expected", "text"),
    ("actual", "text"),
    ("amount (minor)", "num"),
    ("currency", "text"),
    ("age (days)", "num"),
    ("action", "text"),
    ("suggested action", "text"),
)


def _records(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def _exponents(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    if not relation_exists(con, "seeds", "currency_exponents"):
        return {}
    rows = con.execute("SELECT upper(currency), exponent FROM seeds.currency_exponents").fetchall()
    return {str(c): int(e) for c, e in rows}


def format_money(minor: int | None, currency: str | None, exponents: dict[str, int]) -> str:
    """Minor units as major units with the currency's own number of decimals."""
    if minor is None:
        return ""
    exponent = exponents.get((currency or "").upper(), 2)
    return f"{minor / 10**exponent:,.{exponent}f}"


def _bar_chart(
    title: str, values: list[tuple[str, float]], *, text: dict[str, str] | None = None
) -> dict[str, Any]:
    rows = [
        {
            "label": label,
            "segments": [{"value": value, "color": "#2f6fb0", "name": "", "text": str(value)}],
            "total_text": (text or {}).get(label, f"{value:g}"),
        }
        for label, value in values
    ]
    return {
        "title": title,
        "rows": rows if any(v for _, v in values) else [],
        "max": max((v for _, v in values), default=0),
        "legend": [],
        "label_width": max([len(label) for label, _ in values] + [6]) * 6 + 12,
    }


def _by_type_chart(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    counts = con.execute(
        f"SELECT drift_type, severity, count(*) FROM {EXCEPTIONS_TABLE} WHERE {OPEN} GROUP BY ALL"
    ).fetchall()
    per_type: dict[str, dict[str, int]] = {}
    for drift_type, severity, count in counts:
        per_type.setdefault(drift_type, {})[severity] = int(count)
    ordered = sorted(per_type.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    rows = [
        {
            "label": drift_type,
            "segments": [
                {"value": by_sev[s], "color": c, "name": s, "text": str(by_sev[s])}
                for s, c in SEVERITY_COLORS.items()
                if by_sev.get(s)
            ],
            "total_text": str(sum(by_sev.values())),
        }
        for drift_type, by_sev in ordered
    ]
    return {
        "title": "Open findings by type and severity",
        "rows": rows,
        "max": max((sum(v.values()) for _, v in ordered), default=0),
        "legend": [{"name": s, "color": c} for s, c in SEVERITY_COLORS.items()],
        "label_width": max([len(t) for t, _ in ordered] + [6]) * 6 + 12,
    }


def _trend_chart(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    history: list[tuple[datetime, float]] = []
    if relation_exists(con, "recon", "metrics_history"):
        history = con.execute(
            f"SELECT run_at, sum(value) FROM {METRICS_TABLE} "
            "WHERE metric = 'open_exceptions_by_age' GROUP BY run_at ORDER BY run_at"
        ).fetchall()
    width, height = 460, 180
    top = max((v for _, v in history), default=0) or 1
    step = (width - 60) / max(len(history) - 1, 1)
    points = [
        {
            "x": 40 + (i * step if len(history) > 1 else (width - 60) / 2),
            "y": (height - 30) - (value / top) * (height - 45),
            "value": f"{value:g}",
            "label": run_at.strftime("%m-%d %H:%M"),
        }
        for i, (run_at, value) in enumerate(history)
    ]
    return {
        "title": "Open exceptions across runs",
        "points": points,
        "width": width,
        "height": height,
        "max_text": f"{top:g}",
    }


def _funnel_chart(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
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
        [(s, float(counts.get(s, 0))) for s in LIFECYCLE_STAGES],
    )


def _delay_chart(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    days = quote_to_cash_days(con)
    buckets = dict.fromkeys(DELAY_BUCKETS, 0)
    for d in days:
        for label, upper in zip(DELAY_BUCKETS, (7, 14, 30, 60, 90, float("inf")), strict=True):
            if d <= upper:
                buckets[label] += 1
                break
    return _bar_chart(
        "Quote-to-cash delay, days from won to paid",
        [(f"{k} d", float(v)) for k, v in buckets.items()],
    )


def report_context(con: duckdb.DuckDBPyConnection, *, now: datetime) -> dict[str, Any]:
    """Everything the template shows, computed from the exception and canonical tables."""
    exponents = _exponents(con)
    rows = _records(
        con,
        f"SELECT *, greatest(0, floor(epoch(?::TIMESTAMPTZ - first_detected_at) / 86400))::INTEGER "
        f"AS age_days FROM {EXCEPTIONS_TABLE}",
        [now],
    )
    for r in rows:
        r["amount_text"] = format_money(r["amount_impact_minor"], r["currency"], exponents)
    open_rows = [r for r in rows if r["status"] in ("open", "planned")]
    money: dict[str, int] = {}
    for r in open_rows:
        if r["currency"] and r["amount_impact_minor"] is not None:
            money[r["currency"]] = money.get(r["currency"], 0) + int(r["amount_impact_minor"])
    aging = dict.fromkeys(AGE_BUCKETS, 0)
    for r in open_rows:
        days = r["age_days"]
        bucket = "0-1" if days <= 1 else "2-7" if days <= 7 else "8-30" if days <= 30 else ">30"
        aging[bucket] += 1
    money_text = {c: f"{format_money(v, c, exponents)} {c}" for c, v in money.items()}
    return {
        "generated_at": now.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "summary": {
            "open": len(open_rows),
            "review": sum(1 for r in open_rows if r["action"] == "review"),
            "critical": sum(1 for r in open_rows if r["severity"] == "critical"),
            "resolved": sum(1 for r in rows if r["status"] == "resolved"),
            "accuracy": invoice_accuracy(con)
            if relation_exists(con, "reconciliation", "findings")
            else None,
            "money": [{"currency": c, "text": money_text[c]} for c in sorted(money)],
        },
        "charts": {
            "by_type": _by_type_chart(con),
            "money": _bar_chart(
                "Money at stake by currency (major units)",
                [
                    (c, money[c] / 10 ** exponents.get(c, 2))
                    for c in sorted(money, key=lambda c: -money[c])
                ],
                text=money_text,
            ),
            "aging": _bar_chart(
                "Open exceptions by age (days)", [(k, float(v)) for k, v in aging.items()]
            ),
            "trend": _trend_chart(con),
            "funnel": _funnel_chart(con),
            "delay": _delay_chart(con),
        },
        "rows": rows,
        "columns": [{"title": t, "kind": k} for t, k in COLUMNS],
        "drift_types": sorted({r["drift_type"] for r in rows}),
        "statuses": STATUSES,
    }


def render_report(
    con: duckdb.DuckDBPyConnection, out_path: Path, *, now: datetime | None = None
) -> Path:
    """Writes the HTML report to `out_path` (through a temporary name) and returns the path."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = env.get_template("report.html.j2").render(
        **report_context(con, now=(now or datetime.now(UTC)))
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(out_path)
    return out_path


def report_metadata(con: duckdb.DuckDBPyConnection, *, top: int = 10) -> dict[str, Any]:
    """Plain values for an asset's metadata: counts by type, money at stake, a markdown top list."""
    by_type = dict(
        con.execute(
            f"SELECT drift_type, count(*) FROM {EXCEPTIONS_TABLE} WHERE {OPEN} "
            "GROUP BY ALL ORDER BY 2 DESC, 1"
        ).fetchall()
    )
    money = dict(
        con.execute(
            f"SELECT currency, sum(amount_impact_minor)::BIGINT FROM {EXCEPTIONS_TABLE} "
            f"WHERE {OPEN} AND currency IS NOT NULL GROUP BY ALL ORDER BY 1"
        ).fetchall()
    )
    rows = _records(
        con,
        f"SELECT exception_id, drift_type, severity, crm_id, billing_id, erp_id, "
        f"amount_impact_minor, currency, suggested_action FROM {EXCEPTIONS_TABLE} WHERE {OPEN} "
        "ORDER BY list_position(['critical', 'high', 'medium', 'low'], severity), "
        "amount_impact_minor DESC NULLS LAST, exception_id LIMIT ?",
        [top],
    )
    lines = [
        "| code | severity | ids | amount (minor) | suggested action |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        ids = " ".join(x for x in (r["crm_id"], r["billing_id"], r["erp_id"]) if x)
        amount = (
            f"{r['amount_impact_minor']} {r['currency']}"
            if r["amount_impact_minor"] is not None
            else ""
        )
        action = (r["suggested_action"] or "").replace("|", "/")
        lines.append(f"| {r['drift_type']} | {r['severity']} | {ids} | {amount} | {action} |")
    return {
        "open_exceptions": int(sum(by_type.values())),
        "by_type": {k: int(v) for k, v in by_type.items()},
        "money_at_stake_minor": {k: int(v) for k, v in money.items()},
        "top_markdown": "\n".join(lines),
    }
