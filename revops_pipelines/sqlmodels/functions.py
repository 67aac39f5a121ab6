"""SQL functions the models call, registered on each DuckDB connection that runs them."""

from __future__ import annotations

import contextlib
import unicodedata

import duckdb
import pyarrow as pa

# Exact decimal conversion of a major-unit amount to minor units. The amount arrives as the JSON
# number's text and is cast to DECIMAL, never DOUBLE, so 531.65 gives exactly 53165. Amounts below
# 10^8 take a 64-bit DECIMAL(14, 6) (nine times faster than the 128-bit one); larger ones, or ones
# that do not fit, fall back to DECIMAL(38, 9). Extra decimals round half away from zero.
_MACROS = {
    "minor_factor": (
        "(exponent)",
        "CASE CAST(exponent AS INTEGER) WHEN 0 THEN 1 WHEN 1 THEN 10 WHEN 2 THEN 100 "
        "WHEN 3 THEN 1000 WHEN 4 THEN 10000 END",
    ),
    "to_minor": (
        "(amount, exponent)",
        "coalesce("
        "CAST(ROUND(TRY_CAST(CAST(amount AS VARCHAR) AS DECIMAL(14, 6))"
        " * minor_factor(exponent), 0) AS BIGINT), "
        "CAST(ROUND(CAST(CAST(amount AS VARCHAR) AS DECIMAL(38, 9))"
        " * minor_factor(exponent), 0) AS BIGINT))",
    ),
    # A billing amount (Stripe minor units, as text) in the canonical unit, ISO 4217 minor units.
    # `shift` is the ISO exponent minus billing's (seeds.currency_exponents): 0 for most
    # currencies, -2 for ISK (Stripe counts hundredths of a krona), 2 for MGA (Stripe has none).
    "billing_minor": (
        "(amount, shift)",
        "CASE WHEN coalesce(shift, 0) = 0 THEN CAST(CAST(amount AS DECIMAL(38, 0)) AS BIGINT) "
        "WHEN shift > 0 THEN CAST(CAST(amount AS DECIMAL(38, 0)) AS BIGINT) * minor_factor(shift) "
        "ELSE CAST(ROUND(CAST(amount AS DECIMAL(38, 0)) / minor_factor(-shift), 0) AS BIGINT) END",
    ),
    "unix_to_utc": ("(seconds)", "CAST(to_timestamp(CAST(seconds AS BIGINT)) AS TIMESTAMPTZ)"),
    "sf_bool": ("(value)", "CAST(value AS BOOLEAN)"),
    "ns_bool": (
        "(value)",
        "CASE upper(CAST(value AS VARCHAR)) WHEN 'T' THEN TRUE "
        "WHEN 'TRUE' THEN TRUE WHEN 'F' THEN FALSE WHEN 'FALSE' THEN FALSE END",
    ),
    "blank_null": ("(value)", "NULLIF(trim(CAST(value AS VARCHAR)), '')"),
    # For ASCII text (as many bytes as characters) NFKC changes nothing and case folding is
    # lower(); the whitespace Python's str.split() knows in ASCII is \t-\r, \x1c-\x1f and space.
    # Only the other strings go through Python, which is far slower.
    "normalize_text": (
        "(value)",
        "CASE WHEN strlen(value) <> length(value) THEN normalize_text_unicode(value) "
        "ELSE trim(regexp_replace(lower(value), '[\\x09-\\x0d\\x1c-\\x20]+', ' ', 'g')) END",
    ),
}


def normalize_text_value(text: str | None) -> str | None:
    """Matching form of a name or email: NFKC, case folded, trimmed, inner whitespace collapsed."""
    if text is None:
        return None
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _normalize_text_arrow(values: pa.Array) -> pa.Array:
    return pa.array([normalize_text_value(v) for v in values.to_pylist()], type=pa.string())


def register_functions(con: duckdb.DuckDBPyConnection) -> None:
    """Registers `normalize_text(VARCHAR)` and the helper macros; safe to call again."""
    with contextlib.suppress(duckdb.InvalidInputException, duckdb.CatalogException):
        con.remove_function("normalize_text_unicode")
    con.create_function(
        "normalize_text_unicode",
        _normalize_text_arrow,
        [duckdb.sqltype("VARCHAR")],
        duckdb.sqltype("VARCHAR"),
        type="arrow",
        side_effects=False,
    )
    for name, (params, body) in _MACROS.items():
        con.execute(f"CREATE OR REPLACE TEMP MACRO {name}{params} AS {body}")
