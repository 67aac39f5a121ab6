"""SuiteQL for the sandbox ERP: the record files as flat tables in an in-memory DuckDB.

The tables follow docs/DATA_MODEL.md ("ERP SuiteQL tables"). Queries are checked
before they run: one SELECT over those tables only. DuckDB's own parser
(`json_serialize_sql`) does the checking, so what is checked is exactly what would run;
the connection also has file access switched off and its configuration locked.

Datetimes are stored as UTC text `YYYY-MM-DDTHH:MM:SSZ` (fractions dropped), so a
`lastmodifieddate > '2025-01-01T00:00:00Z'` filter is a plain text comparison that
orders like time. NetSuite's `TO_TIMESTAMP('2025-01-01 00:00:00', 'YYYY-MM-DD HH24:MI:SS')`
and `TO_DATE('2025-01-01', 'YYYY-MM-DD')` are rewritten into such text literals.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

# Column name → DuckDB type, per table, in DATA_MODEL.md order.
TABLES: dict[str, dict[str, str]] = {
    "subsidiary": {
        "id": "VARCHAR",
        "name": "VARCHAR",
        "country": "VARCHAR",
        "currency": "VARCHAR",
        "custrecord_legal_entity_code": "VARCHAR",
        "lastmodifieddate": "VARCHAR",
    },
    "currency": {"id": "VARCHAR", "symbol": "VARCHAR", "name": "VARCHAR"},
    "customer": {
        "id": "VARCHAR",
        "externalid": "VARCHAR",
        "entityid": "VARCHAR",
        "companyname": "VARCHAR",
        "email": "VARCHAR",
        "subsidiary": "VARCHAR",
        "currency": "VARCHAR",
        "custentity_crm_account_id": "VARCHAR",
        "custentity_tax_jurisdiction": "VARCHAR",
        "isinactive": "VARCHAR",
        "datecreated": "VARCHAR",
        "lastmodifieddate": "VARCHAR",
    },
    "item": {
        "id": "VARCHAR",
        "itemid": "VARCHAR",
        "displayname": "VARCHAR",
        "externalid": "VARCHAR",
        "isinactive": "VARCHAR",
        "lastmodifieddate": "VARCHAR",
    },
    "transaction": {
        "id": "VARCHAR",
        "type": "VARCHAR",
        "tranid": "VARCHAR",
        "trandate": "VARCHAR",
        "entity": "VARCHAR",
        "subsidiary": "VARCHAR",
        "currency": "VARCHAR",
        "externalid": "VARCHAR",
        "foreigntotal": "DOUBLE",
        "foreigntaxtotal": "DOUBLE",
        "foreignamountremaining": "DOUBLE",
        "status": "VARCHAR",
        "custbody_billing_subscription_id": "VARCHAR",
        "datecreated": "VARCHAR",
        "lastmodifieddate": "VARCHAR",
    },
    "transactionline": {
        "id": "VARCHAR",
        "transaction": "VARCHAR",
        "linesequencenumber": "INTEGER",
        "item": "VARCHAR",
        "quantity": "DOUBLE",
        "rate": "DOUBLE",
        "foreignamount": "DOUBLE",
        "memo": "VARCHAR",
    },
    "currencyrate": {
        "id": "VARCHAR",
        "basecurrency": "VARCHAR",
        "transactioncurrency": "VARCHAR",
        "exchangerate": "DOUBLE",
        "effectivedate": "VARCHAR",
    },
    "previoustransactionlink": {
        "id": "VARCHAR",
        "previousdoc": "VARCHAR",
        "nextdoc": "VARCHAR",
        "linktype": "VARCHAR",
        "foreignamount": "DOUBLE",
    },
}

_ARROW_TYPES = {"VARCHAR": pa.string(), "DOUBLE": pa.float64(), "INTEGER": pa.int32()}

TRANSACTION_TYPES = {"invoice": "CustInvc", "customerpayment": "CustPymt", "creditmemo": "CustCred"}

_CURRENCY_NAMES = {
    "USD": "US Dollar",
    "EUR": "Euro",
    "GBP": "British Pound",
    "JPY": "Japanese Yen",
    "CAD": "Canadian Dollar",
    "AUD": "Australian Dollar",
    "CHF": "Swiss Franc",
    "KWD": "Kuwaiti Dinar",
}

# Functions that read outside the tables; file access is off anyway, this names the refusal.
_DENIED_FUNCTIONS = frozenset(
    {"getenv", "current_setting", "query", "query_table", "sql_auto_complete"}
)
_DENIED_PREFIXES = ("read_", "duckdb_", "pragma_", "parquet_", "glob")


class SuiteQLError(Exception):
    """A SuiteQL query the sandbox refuses; `detail` goes into NetSuite's error body."""

    def __init__(self, detail: str, *, error_code: str = "INVALID_PARAMETER") -> None:
        self.detail = detail
        self.error_code = error_code
        super().__init__(f"{error_code}: {detail}")


def _invalid(reason: str) -> SuiteQLError:
    return SuiteQLError(f"Invalid search query. Detailed unprocessed description follows. {reason}")


_PLAIN_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def iso_utc(value: Any) -> str | None:
    """A datetime as `YYYY-MM-DDTHH:MM:SSZ` in UTC, the one text form that sorts like time."""
    if value is None or value == "":
        return None
    text = str(value)
    if _PLAIN_UTC.match(text):
        return text
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ref(value: Any) -> str | None:
    """A NetSuite reference `{"id", "refName"}` (or a bare id) as its id text."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return None if value is None or value == "" else str(value)


def _flag(value: Any) -> str:
    return "T" if value is True or value == "T" else "F"


def _number(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _sublist(record: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    value = record.get(name)
    items = value.get("items") if isinstance(value, Mapping) else value
    return [item for item in items or () if isinstance(item, Mapping)]


def build_rows(
    records: Mapping[str, Sequence[Mapping[str, Any]]],
) -> dict[str, list[dict[str, Any]]]:
    """The SuiteQL rows of every table, from the ERP record files (type name → records)."""
    customers = records.get("customer", ())
    customer_subsidiary = {str(c.get("id")): _ref(c.get("subsidiary")) for c in customers}
    currencies: dict[str, str | None] = {}

    def currency_of(record: Mapping[str, Any]) -> str | None:
        return _currency_ref(record.get("currency"), currencies)

    tables: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    for record in records.get("subsidiary", ()):
        tables["subsidiary"].append(
            {
                "id": str(record.get("id")),
                "name": _text(record.get("name")),
                "country": _text(record.get("country")),
                "currency": currency_of(record),
                "custrecord_legal_entity_code": _text(record.get("custrecord_legal_entity_code")),
                "lastmodifieddate": iso_utc(record.get("lastModifiedDate")),
            }
        )
    for record in customers:
        tables["customer"].append(
            {
                "id": str(record.get("id")),
                "externalid": _text(record.get("externalId")),
                "entityid": _text(record.get("entityId")),
                "companyname": _text(record.get("companyName")),
                "email": _text(record.get("email")),
                "subsidiary": _ref(record.get("subsidiary")),
                "currency": currency_of(record),
                "custentity_crm_account_id": _text(record.get("custentity_crm_account_id")),
                "custentity_tax_jurisdiction": _text(record.get("custentity_tax_jurisdiction")),
                "isinactive": _flag(record.get("isInactive")),
                "datecreated": iso_utc(record.get("dateCreated")),
                "lastmodifieddate": iso_utc(record.get("lastModifiedDate")),
            }
        )
    for record in records.get("item", ()):
        tables["item"].append(
            {
                "id": str(record.get("id")),
                "itemid": _text(record.get("itemId")),
                "displayname": _text(record.get("displayName")),
                "externalid": _text(record.get("externalId")),
                "isinactive": _flag(record.get("isInactive")),
                "lastmodifieddate": iso_utc(record.get("lastModifiedDate")),
            }
        )
    for record in records.get("currencyrate", ()):
        tables["currencyrate"].append(
            {
                "id": str(record.get("id")),
                "basecurrency": _currency_ref(record.get("baseCurrency"), currencies),
                "transactioncurrency": _currency_ref(record.get("transactionCurrency"), currencies),
                "exchangerate": _number(record.get("exchangeRate")),
                "effectivedate": _text(record.get("effectiveDate")),
            }
        )
    links: dict[str, dict[str, Any]] = {}
    for record_type, type_code in TRANSACTION_TYPES.items():
        for record in records.get(record_type, ()):
            tables["transaction"].append(_transaction_row(record, type_code, currency_of))
            transaction_id = str(record.get("id"))
            if tables["transaction"][-1]["subsidiary"] is None:
                entity = tables["transaction"][-1]["entity"]
                tables["transaction"][-1]["subsidiary"] = customer_subsidiary.get(str(entity))
            for sequence, line in enumerate(_sublist(record, "item"), start=1):
                tables["transactionline"].append(
                    {
                        "id": f"{transaction_id}-{sequence}",
                        "transaction": transaction_id,
                        "linesequencenumber": sequence,
                        "item": _ref(line.get("item")),
                        "quantity": _number(line.get("quantity")),
                        "rate": _number(line.get("rate")),
                        "foreignamount": _number(line.get("amount")),
                        "memo": _text(line.get("description")),
                    }
                )
            for previous, amount, link_type in _applied_to(record, record_type):
                key = f"{previous}-{transaction_id}"
                if key in links:
                    links[key]["foreignamount"] = (links[key]["foreignamount"] or 0.0) + (
                        amount or 0.0
                    )
                    continue
                links[key] = {
                    "id": key,
                    "previousdoc": previous,
                    "nextdoc": transaction_id,
                    "linktype": link_type,
                    "foreignamount": amount,
                }
    tables["previoustransactionlink"] = list(links.values())
    tables["currency"] = [
        {"id": currency_id, "symbol": symbol, "name": _CURRENCY_NAMES.get(symbol or "", symbol)}
        for currency_id, symbol in sorted(currencies.items(), key=lambda pair: pair[0])
    ]
    return tables


def _currency_ref(ref: Any, currencies: dict[str, str | None]) -> str | None:
    """The currency's internal id; its symbol is remembered for the `currency` table."""
    currency_id = _ref(ref)
    if currency_id is not None and not currencies.get(currency_id):
        currencies[currency_id] = ref.get("refName") if isinstance(ref, Mapping) else None
    return currency_id


def _transaction_row(
    record: Mapping[str, Any], type_code: str, currency_of: Callable[[Mapping[str, Any]], Any]
) -> dict[str, Any]:
    is_payment = type_code == "CustPymt"
    status = record.get("status")
    return {
        "id": str(record.get("id")),
        "type": type_code,
        "tranid": _text(record.get("tranId")),
        "trandate": _text(record.get("tranDate")),
        "entity": _ref(record.get("customer") if is_payment else record.get("entity")),
        "subsidiary": _ref(record.get("subsidiary")),
        "currency": currency_of(record),
        "externalid": _text(record.get("externalId")),
        "foreigntotal": _number(record.get("payment") if is_payment else record.get("total")),
        "foreigntaxtotal": _number(record.get("taxTotal")),
        "foreignamountremaining": _number(record.get("amountRemaining")),
        "status": _ref(status) if type_code == "CustInvc" else None,
        "custbody_billing_subscription_id": _text(record.get("custbody_billing_subscription_id")),
        "datecreated": iso_utc(record.get("dateCreated")),
        "lastmodifieddate": iso_utc(record.get("lastModifiedDate")),
    }


def _applied_to(
    record: Mapping[str, Any], record_type: str
) -> Iterable[tuple[str, float | None, str]]:
    if record_type == "customerpayment":
        for line in _sublist(record, "apply"):
            previous = _ref(line.get("doc"))
            if previous is not None and line.get("apply", True) is not False:
                yield previous, _number(line.get("amount")), "Payment"
    elif record_type == "creditmemo":
        previous = _ref(record.get("createdFrom"))
        if previous is not None:
            yield previous, _number(record.get("total")), "CreditMemo"


def _arrow_table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    columns = TABLES[name]
    schema = pa.schema([(column, _ARROW_TYPES[kind]) for column, kind in columns.items()])
    return pa.table({column: [row[column] for row in rows] for column in columns}, schema=schema)


_FORMAT_PARTS = (
    ("YYYY", "%Y"),
    ("HH24", "%H"),
    ("MM", "%m"),
    ("DD", "%d"),
    ("MI", "%M"),
    ("SS", "%S"),
)
_TO_TIME = re.compile(r"\bTO_(TIMESTAMP|DATE)\s*\(\s*'([^']*)'\s*,\s*'([^']*)'\s*\)", re.IGNORECASE)
_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")


def _oracle_format(fmt: str) -> str:
    out = fmt
    for oracle, python in _FORMAT_PARTS:
        out = out.replace(oracle, python)
    return out


def rewrite_time_literals(query: str) -> str:
    """`TO_TIMESTAMP('…', 'YYYY-MM-DD HH24:MI:SS')` → `'…T…Z'`, the form the tables hold."""

    def replace(match: re.Match[str]) -> str:
        kind, value, fmt = match.group(1).upper(), match.group(2), match.group(3)
        try:
            moment = datetime.strptime(value, _oracle_format(fmt.upper()))
        except ValueError:
            raise _invalid(f"{match.group(0)}: the value does not match the format") from None
        if kind == "DATE" and (moment.hour, moment.minute, moment.second) == (0, 0, 0):
            return f"'{moment.date().isoformat()}'"
        return f"'{moment.strftime('%Y-%m-%dT%H:%M:%SZ')}'"

    return _TO_TIME.sub(replace, query)


def _walk(node: Any) -> Iterable[dict[str, Any]]:
    """Every object of a parsed JSON tree (only dicts and lists, so exact type checks do)."""
    stack = [node]
    while stack:
        current = stack.pop()
        kind = type(current)
        if kind is dict:
            yield current
            stack.extend(value for value in current.values() if type(value) in (dict, list))
        elif kind is list:
            stack.extend(item for item in current if type(item) in (dict, list))


def check_query(query: str, *, connection: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Refuse anything but one SELECT over the SuiteQL tables, before it runs; its parse tree."""
    if ";" in _STRING_LITERAL.sub("''", query):
        raise _invalid("only one statement is allowed; remove the ';'")
    try:
        ((serialized,),) = connection.execute("SELECT json_serialize_sql(?)", [query]).fetchall()
    except duckdb.Error as error:
        raise _invalid(str(error).splitlines()[0]) from None
    tree = json.loads(serialized)
    if tree.get("error"):
        reason = tree.get("error_message", "")
        if "Only SELECT" in reason:
            reason = "only SELECT queries are allowed"
        raise _invalid(reason)
    if len(tree.get("statements", ())) != 1:
        raise _invalid("exactly one SELECT statement is allowed")
    nodes = list(_walk(tree))
    cte_names = {
        entry["key"].lower()
        for node in nodes
        if type(node.get("cte_map")) is dict
        for entry in node["cte_map"].get("map", ())
    }
    for node in nodes:
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            raise _invalid("table functions are not allowed")
        if kind == "BASE_TABLE":
            table = str(node.get("table_name", "")).lower()
            if node.get("schema_name") or node.get("catalog_name"):
                raise _invalid(f"Table '{node.get('schema_name')}.{table}' does not exist")
            if table not in TABLES and table not in cte_names:
                raise _invalid(f"Record '{table}' was not found.")
        if node.get("class") == "FUNCTION":
            name = str(node.get("function_name", "")).lower()
            if name in _DENIED_FUNCTIONS or name.startswith(_DENIED_PREFIXES):
                raise _invalid(f"function {name} is not allowed")
    return tree


def _count_query(tree: dict[str, Any], *, connection: duckdb.DuckDBPyConnection) -> str:
    """The checked query counted, without its outermost ORDER BY (no count depends on it)."""
    node = tree["statements"][0]["node"]
    node["modifiers"] = [m for m in node.get("modifiers", ()) if m.get("type") != "ORDER_MODIFIER"]
    ((text,),) = connection.execute("SELECT json_deserialize_sql(?)", [json.dumps(tree)]).fetchall()
    return f"SELECT count(*) FROM (\n{text}\n) AS _counted"


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return iso_utc(value.isoformat())
    if isinstance(value, date):
        return value.isoformat()
    return value


INCREMENTAL_LIMIT = 2000  # more changed records than this: rebuild the tables instead
_PLAIN = (str, int, float, bool, type(None))


class SuiteQLEngine:
    """SuiteQL over a state store; the tables are built once, then follow the store's writes.

    A page runs the query with its limit and offset, so no whole result is held nor turned
    into Python objects; the row count is taken only when the page is full, and kept per
    (query, version) for the later pages. One thread per connection keeps the rows of a
    query without ORDER BY in the same order on every page. Each query runs on its own
    cursor, cut off after `time_limit_s` or refused beyond `row_limit` rows, so one heavy
    query holds up no other.
    """

    def __init__(
        self,
        *,
        records: Callable[[], Mapping[str, Sequence[Mapping[str, Any]]]],
        version: Callable[[], int],
        cached_counts: int = 256,
        time_limit_s: float = 30.0,
        row_limit: int = 1_000_000,
        changes: Callable[[int | None], tuple[int, list[tuple[str, Any]] | None]] | None = None,
    ) -> None:
        self._records = records
        self._version = version
        self._cached_counts = cached_counts
        self._time_limit_s = time_limit_s
        self._row_limit = row_limit
        # changes(since) → (change count now, records written since, or None if unknown);
        # with it, a write updates the rows derived from its record instead of a rebuild.
        self._changes = changes
        self._built_changes = 0
        self.rebuilds = 0
        self._lock = threading.Lock()
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._built_version: int | None = None
        self._counts: OrderedDict[tuple[str, int], int] = OrderedDict()

    def _build(self, version: int) -> duckdb.DuckDBPyConnection:
        if self._changes is not None:
            self._built_changes = self._changes(None)[0]
        self.rebuilds += 1
        tables = build_rows(self._records())
        # One thread keeps results of a query without ORDER BY in the same order every time.
        connection = duckdb.connect(":memory:", config={"threads": 1})
        for name, rows in tables.items():
            connection.register("_rows", _arrow_table(name, rows))
            connection.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _rows')
            connection.unregister("_rows")
        connection.execute("SET enable_external_access = false")
        connection.execute("SET lock_configuration = true")
        # The old connection is not closed here: queries still running hold it, and it goes
        # when the last of them lets go.
        self._connection = connection
        self._built_version = version
        self._counts.clear()
        return connection

    def _update(
        self, connection: duckdb.DuckDBPyConnection, version: int
    ) -> duckdb.DuckDBPyConnection | None:
        """Replace the rows derived from each record written since the last build or update."""
        if self._changes is None:
            return None
        count, changed = self._changes(self._built_changes)
        if changed is None or len(changed) > INCREMENTAL_LIMIT:
            return None
        latest: dict[tuple[str, str], Any] = {}
        for name, record in changed:
            latest[(name, str(record.get("id")))] = record
        by_type: dict[str, list[Any]] = {}
        for (name, _), record in latest.items():
            by_type.setdefault(name, []).append(record)
        tables = build_rows(by_type)
        ids = {name: [key for (n, key) in latest if n == name] for name in by_type}
        transactions = [key for name in TRANSACTION_TYPES for key in ids.get(name, ())]
        deletes = [
            (table, "id", ids.get(table, [])) for table in ("subsidiary", "customer", "item")
        ]
        deletes += [
            ("transaction", "id", transactions),
            ("transactionline", "transaction", transactions),
            ("previoustransactionlink", "nextdoc", transactions),
        ]
        connection.execute("BEGIN TRANSACTION")
        try:
            for table, column, keys in deletes:
                if keys:
                    connection.execute(
                        f'DELETE FROM "{table}" WHERE "{column}" IN (SELECT unnest(?))', [keys]
                    )
            for name, rows in tables.items():
                if not rows:
                    continue
                connection.register("_rows", _arrow_table(name, rows))
                if name == "currency":
                    connection.execute(
                        'INSERT INTO "currency" SELECT * FROM _rows '
                        'WHERE id NOT IN (SELECT id FROM "currency")'
                    )
                else:
                    connection.execute(f'INSERT INTO "{name}" SELECT * FROM _rows')
                connection.unregister("_rows")
            if transactions:
                # A transaction without a subsidiary of its own takes its customer's.
                connection.execute(
                    'UPDATE "transaction" AS t SET subsidiary = c.subsidiary FROM "customer" AS c '
                    "WHERE t.subsidiary IS NULL AND c.id = t.entity AND t.id IN (SELECT unnest(?))",
                    [transactions],
                )
            connection.execute("COMMIT")
        except duckdb.Error:
            connection.execute("ROLLBACK")
            return None
        self._built_changes = count
        self._built_version = version
        self._counts.clear()
        return connection

    def _current(self) -> tuple[duckdb.DuckDBPyConnection, int]:
        """The connection whose tables hold the store as it is now (call with the lock)."""
        version = self._version()
        connection = self._connection
        if connection is not None and self._built_version != version:
            connection = self._update(connection, version)
        if connection is None or self._built_version != version:
            connection = self._build(version)
        return connection, version

    def page(
        self, query: str, *, offset: int, limit: int
    ) -> tuple[list[str], list[dict[str, Any]], int]:
        """One page of a checked query: columns (lowercase), rows, total row count."""
        text = rewrite_time_literals(query.strip())
        if not text:
            raise _invalid("the query is empty")
        with self._lock:
            connection, version = self._current()
            key = (text, version)
            total = self._counts.get(key)
            if total is not None:
                self._counts.move_to_end(key)
            cursor = connection.cursor()
        try:
            tree = None if total is not None else check_query(text, connection=cursor)
            columns, fetched, counted = self._run(
                cursor, text, offset=offset, limit=limit, tree=tree
            )
        finally:
            cursor.close()
        if total is None:  # counted now, for this page and the later ones
            total = counted or 0
            with self._lock:
                self._counts[key] = total
                while len(self._counts) > self._cached_counts:
                    self._counts.popitem(last=False)
        rows = [
            {
                column: value if type(value) in _PLAIN else _json_value(value)
                for column, value in zip(columns, row, strict=True)
            }
            for row in fetched
        ]
        return columns, rows, total

    def _run(
        self,
        cursor: duckdb.DuckDBPyConnection,
        text: str,
        *,
        offset: int,
        limit: int,
        tree: dict[str, Any] | None,
    ) -> tuple[list[str], list[tuple[Any, ...]], int | None]:
        """The page's rows, and the query's row count when its parse `tree` is given (then
        counted only if the page is full)."""
        timer = threading.Timer(self._time_limit_s, cursor.interrupt)
        timer.daemon = True
        timer.start()
        try:
            relation = cursor.sql(text)
            columns = [str(column).lower() for column in relation.columns]
            if len(set(columns)) != len(columns):
                raise _invalid("two result columns have the same name; give them aliases")
            fetched = relation.limit(limit, offset).fetchall()
            total = None
            if tree is not None and len(fetched) < limit and (fetched or not offset):
                total = offset + len(fetched)
            elif tree is not None:
                ((total,),) = cursor.execute(_count_query(tree, connection=cursor)).fetchall()
            if total is not None and total > self._row_limit:
                raise SuiteQLError(
                    f"The query returns more than {self._row_limit} rows. Narrow it with "
                    "WHERE, or read it in windows (id > last id ORDER BY id).",
                    error_code="INVALID_PARAMETER",
                )
        except duckdb.InterruptException:
            raise SuiteQLError(
                f"The query ran longer than {self._time_limit_s:g} s and was stopped. "
                "Narrow it, or read it in windows (id > last id ORDER BY id).",
                error_code="SSS_SEARCH_TIMEOUT",
            ) from None
        except duckdb.Error as error:
            raise _invalid(str(error).splitlines()[0]) from None
        finally:
            timer.cancel()
        return columns, fetched, total

    def rows(self, query: str) -> tuple[list[str], list[dict[str, Any]]]:
        """All result rows (lowercase column names) of a checked query; SuiteQLError if refused."""
        columns, rows, _ = self.page(query, offset=0, limit=2**62)
        return columns, rows
