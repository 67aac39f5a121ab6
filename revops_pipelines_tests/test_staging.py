from __future__ import annotations

from decimal import Decimal

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from revops_pipelines.sandbox.raw_tables import create_raw_tables, load_raw
from revops_pipelines.sqlmodels import (
    load_models,
    normalize_text_value,
    register_functions,
    run_models,
)

CURRENCY_BY_EXPONENT = {0: "JPY", 2: "USD", 3: "KWD"}


def _staging(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    run_models(con, load_models(), select=set(names))


def _opportunity_json(opportunity_id: str, amount_text: str, currency: str) -> str:
    return (
        f'{{"Id": "{opportunity_id}", "Amount": {amount_text}, "CurrencyIsoCode": "{currency}", '
        '"IsDeleted": false}'
    )


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(sorted(CURRENCY_BY_EXPONENT)), st.integers(-(10**13), 10**13)),
        min_size=1,
        max_size=40,
    )
)
def test_major_unit_json_numbers_become_the_same_minor_units(cases: list[tuple[int, int]]) -> None:
    con = duckdb.connect()
    create_raw_tables(con)
    rows, expected = [], {}
    for index, (exponent, minor) in enumerate(cases):
        major = Decimal(minor).scaleb(-exponent)
        currency = CURRENCY_BY_EXPONENT[exponent]
        # the decimal text a careful API writes, and the float repr a Python client writes
        for form, text in (("d", str(major)), ("f", repr(float(major)))):
            oid = f"006{index}{form}"
            rows.append((oid, _opportunity_json(oid, text, currency)))
            expected[oid] = minor
    con.executemany("insert into raw.crm_opportunity (id, payload) values (?, ?)", rows)
    _staging(con, "stg_crm_opportunity")
    got = dict(
        con.execute(
            "select opportunity_id, amount_minor from staging.stg_crm_opportunity"
        ).fetchall()
    )
    assert got == expected


# ASCII text, control characters and all, takes the pure-SQL path; the rest goes through Python.
_ASCII = st.text(st.characters(max_codepoint=0x7F, exclude_characters="\x00"), max_size=30)
_ANY = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_ASCII, _ANY, st.none()), min_size=1, max_size=20))
def test_normalize_text_in_sql_is_nfkc_casefold_and_collapsed_whitespace(
    texts: list[str | None],
) -> None:
    con = duckdb.connect()
    register_functions(con)
    sql = "select list_transform(?, lambda t: normalize_text(t))"
    got = con.execute(sql, [texts]).fetchall()[0][0]
    assert got == [normalize_text_value(t) for t in texts]


def test_known_amounts_and_timestamps() -> None:
    con = duckdb.connect()
    load_raw(
        con,
        {
            "crm_opportunity": [
                {
                    "Id": "006a",
                    "Amount": 531.65,
                    "CurrencyIsoCode": "USD",
                    "CloseDate": "2025-03-01",
                    "IsDeleted": False,
                    "CreatedDate": "2025-03-01T10:15:00.000+0000",
                },
                {"Id": "006b", "Amount": 53165, "CurrencyIsoCode": "JPY", "IsDeleted": True},
                {"Id": "006c", "Amount": 12.345, "CurrencyIsoCode": "KWD", "IsDeleted": False},
            ],
            "billing_customer": [
                {
                    "id": "cus_1",
                    "name": "  ACME\u3000 Corp ",
                    "email": "AP@Acme.Example",
                    "currency": "usd",
                    "created": 1735787045,
                    "address": {"country": "us"},
                    "metadata": {"crm_account_id": "001a"},
                },
            ],
        },
    )
    _staging(con, "stg_crm_opportunity", "stg_billing_customer")
    opps = con.execute(
        "select opportunity_id, amount_minor, is_deleted, created_at, close_date "
        "from staging.stg_crm_opportunity order by 1"
    ).fetchall()
    assert [(o[0], o[1], o[2]) for o in opps] == [
        ("006a", 53165, False),
        ("006b", 53165, True),
        ("006c", 12345, False),
    ]
    assert opps[0][3].isoformat() == "2025-03-01T10:15:00+00:00"
    customer = con.execute(
        "select name_norm, email_norm, currency, country_norm, crm_account_id, created_at "
        "from staging.stg_billing_customer"
    ).fetchone()
    assert customer[:5] == ("acme corp", "ap@acme.example", "USD", "US", "001a")
    assert customer[5].isoformat() == "2025-01-02T03:04:05+00:00"


def test_billing_invoice_tax_is_sum_of_total_taxes_and_lines_are_numbered() -> None:
    con = duckdb.connect()
    load_raw(
        con,
        {
            "billing_invoice": [
                {
                    "id": "in_1",
                    "customer": "cus_1",
                    "status": "open",
                    "currency": "eur",
                    "created": 1735689600,
                    "subtotal": 1000,
                    "total": 1250,
                    "total_taxes": [{"amount": 200}, {"amount": 50}],
                    "parent": {"subscription_details": {"subscription": "sub_1"}},
                    "status_transitions": {"finalized_at": 1735689700},
                    "lines": {
                        "data": [
                            {
                                "id": "il_a",
                                "amount": 600,
                                "currency": "eur",
                                "period": {"start": 1735689600, "end": 1738368000},
                            },
                            {
                                "id": "il_b",
                                "amount": 400,
                                "currency": "eur",
                                "period": {"start": 1735689600, "end": 1738368000},
                            },
                        ]
                    },
                },
            ],
        },
    )
    _staging(con, "stg_billing_invoice", "stg_billing_invoice_line", "stg_billing_product")
    invoice = con.execute(
        "select tax_minor, total_minor, subscription_id, currency, is_finalized "
        "from staging.stg_billing_invoice"
    ).fetchone()
    assert invoice == (250, 1250, "sub_1", "EUR", True)
    lines = con.execute(
        "select invoice_line_id, line_number, amount_minor from staging.stg_billing_invoice_line "
        "order by line_number"
    ).fetchall()
    assert lines == [("il_a", 1, 600), ("il_b", 2, 400)]


def test_erp_transaction_type_falls_back_to_its_stream() -> None:
    con = duckdb.connect()
    load_raw(
        con,
        {
            "erp_currency": [{"id": "1", "symbol": "KWD"}],
            "erp_invoice": [{"id": "1", "currency": "1", "foreigntotal": 30.5}],
            "erp_customer_payment": [{"id": "2", "type": "CustPymt", "foreigntotal": 1}],
        },
    )
    _staging(con, "stg_erp_currency", "stg_erp_transaction")
    rows = con.execute(
        "select transaction_id, transaction_type, total_minor, currency "
        "from staging.stg_erp_transaction order by 1"
    ).fetchall()
    assert rows == [("1", "CustInvc", 30500, "KWD"), ("2", "CustPymt", 100, None)]
