from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from revops_pipelines.sandbox.raw_tables import load_raw, load_state_dir
from revops_pipelines.schemas import CANONICAL_SCHEMAS, validate_table
from revops_pipelines.sqlmodels import load_models, run_models
from revops_pipelines_tests.conftest import HANDWRITTEN_STATE


def _canonical(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    models = [m for m in load_models() if m.schema in {"staging", "canonical"}]
    return run_models(con, models)


def _unix(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def test_handwritten_state_builds_valid_canonical_tables() -> None:
    con = duckdb.connect()
    load_state_dir(con, HANDWRITTEN_STATE)
    _canonical(con)
    for table in CANONICAL_SCHEMAS:
        result = validate_table(con, table)
        assert result.passed, (table, result.sample_markdown)

    erp = dict(
        con.execute(
            "select source_id, status || '/' || billing_customer_id from canonical.invoice "
            "where source_system = 'erp'"
        ).fetchall()
    )
    assert erp["5682"] == "void/cus_U4d5E6f7G8h9J0"  # voided → void, customer via externalid
    assert erp["5678"] == "paid/cus_R1a2B3c4D5e6F7"
    kwd = con.execute(
        "select source_system, total_minor from canonical.invoice "
        "where billing_invoice_id = 'in_1QabcGulf0001' order by 1"
    ).fetchall()
    assert kwd == [("billing", 30000), ("erp", 30000)]  # KWD: three decimals both sides
    payments = con.execute(
        "select billing_payment_id, amount_minor, billing_invoice_id from canonical.payment "
        "where source_system = 'erp' and billing_payment_id = 'inpay_1QAcme000001'"
    ).fetchall()
    assert payments == [("inpay_1QAcme000001", 53165, "in_1QabcAcme0001")]
    # the deleted CRM account is kept as history but takes no part in the cross-reference
    deleted = con.execute(
        "select is_deleted, is_active from canonical.customer "
        "where source_id = '001Hs00003AbCdJIAV'"
    ).fetchone()
    assert deleted == (True, False)
    xref = con.execute(
        "select count(*), count(*) filter (where link_method = 'link') from canonical.customer_xref"
    ).fetchone()
    assert xref == (4, 4)
    stages = dict(
        con.execute(
            "select stage, count(*) from canonical.lifecycle_event "
            "where correlation_id = '006Hs00001XyZaAIAV' group by stage"
        ).fetchall()
    )
    assert stages["opportunity_won"] == 1 and stages["erp_posted"] == 2


def _invoice_with_line(line_id: str, amount: int, start: date, end: date) -> dict:
    return {
        "id": f"in_{line_id}",
        "customer": "cus_1",
        "status": "paid",
        "currency": "usd",
        "created": _unix(start),
        "subtotal": amount,
        "total": amount,
        "total_taxes": [],
        "status_transitions": {"finalized_at": _unix(start)},
        "lines": {
            "data": [
                {
                    "id": line_id,
                    "amount": amount,
                    "currency": "usd",
                    "period": {"start": _unix(start), "end": _unix(end)},
                }
            ]
        },
    }


def test_revenue_split_by_days_with_remainder_in_last_month() -> None:
    con = duckdb.connect()
    load_raw(
        con,
        {
            "billing_invoice": [
                _invoice_with_line("il_x", 1000, date(2025, 1, 15), date(2025, 3, 15))
            ]
        },
    )
    _canonical(con)
    months = con.execute(
        "select month, amount_minor from canonical.revenue_event order by month"
    ).fetchall()
    # 17 + 28 + 14 = 59 days: floor(1000·17/59)=288, floor(1000·28/59)=474, rest 238
    assert months == [(date(2025, 1, 1), 288), (date(2025, 2, 1), 474), (date(2025, 3, 1), 238)]


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-(10**9), 10**12),
            st.dates(date(2020, 1, 1), date(2030, 1, 1)),
            st.integers(0, 800),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_revenue_months_sum_to_line_amount(lines: list[tuple[int, date, int]]) -> None:
    con = duckdb.connect()
    invoices = [
        _invoice_with_line(f"il_{i}", amount, start, date.fromordinal(start.toordinal() + days))
        for i, (amount, start, days) in enumerate(lines)
    ]
    load_raw(con, {"billing_invoice": invoices})
    _canonical(con)
    sums = dict(
        con.execute(
            "select invoice_line_id, sum(amount_minor) from canonical.revenue_event group by 1"
        ).fetchall()
    )
    assert sums == {f"il_{i}": amount for i, (amount, _, _) in enumerate(lines)}


def test_customer_xref_follows_link_fields_through_chains() -> None:
    con = duckdb.connect()
    load_raw(
        con,
        {
            "crm_account": [
                {"Id": "001A", "Name": "A"},
                {"Id": "001B", "Name": "B", "Billing_Customer_Id__c": "cus_B"},
                {"Id": "001C", "Name": "C"},
            ],
            "billing_customer": [
                {"id": "cus_A", "name": "A", "metadata": {"crm_account_id": "001A"}},
                {"id": "cus_B", "name": "B", "metadata": {}},
            ],
            "erp_customer": [
                {"id": "10", "externalid": "cus_A"},
                {"id": "11", "custentity_crm_account_id": "001B"},
                {"id": "12"},
            ],
        },
    )
    _canonical(con)
    rows = con.execute(
        "select crm_account_id, billing_customer_id, erp_customer_id, link_method "
        "from canonical.customer_xref order by xref_id"
    ).fetchall()
    assert sorted(rows, key=str) == sorted(
        [
            ("001A", "cus_A", "10", "link"),
            ("001B", "cus_B", "11", "link"),
            ("001C", None, None, "none"),
            (None, None, "12", "none"),
        ],
        key=str,
    )


def test_erp_payment_applied_to_two_invoices_gives_two_rows() -> None:
    con = duckdb.connect()
    load_raw(
        con,
        {
            "erp_currency": [{"id": "1", "symbol": "USD"}],
            "erp_invoice": [
                {
                    "id": "1",
                    "type": "CustInvc",
                    "currency": "1",
                    "externalid": "in_1",
                    "foreigntotal": 10.5,
                    "status": "paidInFull",
                },
                {
                    "id": "2",
                    "type": "CustInvc",
                    "currency": "1",
                    "externalid": "in_2",
                    "foreigntotal": 4.25,
                    "status": "open",
                },
            ],
            "erp_customer_payment": [
                {
                    "id": "3",
                    "type": "CustPymt",
                    "currency": "1",
                    "externalid": "inpay_1",
                    "foreigntotal": 14.75,
                    "trandate": "2025-02-01",
                },
            ],
            "erp_previous_transaction_link": [
                {
                    "id": "1-3",
                    "previousdoc": "1",
                    "nextdoc": "3",
                    "linktype": "Payment",
                    "foreignamount": 10.5,
                },
                {
                    "id": "2-3",
                    "previousdoc": "2",
                    "nextdoc": "3",
                    "linktype": "Payment",
                    "foreignamount": 4.25,
                },
            ],
        },
    )
    _canonical(con)
    rows = con.execute(
        "select source_id, invoice_id, billing_invoice_id, amount_minor, currency "
        "from canonical.payment order by invoice_id"
    ).fetchall()
    assert rows == [("3", "1", "in_1", 1050, "USD"), ("3", "2", "in_2", 425, "USD")]
    assert validate_table(con, "payment").passed


def test_generated_state_builds_valid_canonical_tables(tmp_path) -> None:
    from revops_pipelines.sandbox.generate import generate_state

    generate_state(tmp_path, customers=30, months=6, seed=3, drift_rate=0.1)
    con = duckdb.connect()
    raw = load_state_dir(con, tmp_path)
    counts = _canonical(con)
    for table in CANONICAL_SCHEMAS:
        result = validate_table(con, table)
        assert result.passed, (table, result.sample_markdown)
    assert counts["invoice"] == raw["billing_invoice"] + raw["erp_invoice"]
    # within billing, lines add up to the subtotal and subtotal + tax to the total
    unbalanced = con.execute(
        """
        select i.source_id
        from canonical.invoice as i
        left join canonical.invoice_line as l
            on l.source_system = i.source_system and l.invoice_id = i.source_id
        where i.source_system = 'billing'
        group by i.source_id, i.subtotal_minor, i.tax_minor, i.total_minor
        having coalesce(sum(l.amount_minor), 0) <> i.subtotal_minor
            or i.subtotal_minor + i.tax_minor <> i.total_minor
        """
    ).fetchall()
    assert unbalanced == []
    revenue = con.execute(
        "select (select sum(amount_minor) from canonical.revenue_event) = "
        "(select sum(l.amount_minor) from canonical.invoice_line l join canonical.invoice i "
        " on i.source_system = l.source_system and i.source_id = l.invoice_id "
        " where l.source_system = 'billing' and i.is_finalized and i.status <> 'void' "
        " and l.period_start is not null)"
    ).fetchone()
    assert revenue == (True,)
