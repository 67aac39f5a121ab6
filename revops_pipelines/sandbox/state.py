"""The state directory the sandbox servers serve, loaded into memory and written back.

The state directory is a public contract (docs: SOURCES.md): anyone may write one by
hand, so loading is strict about what makes a file unusable (a line that is not a JSON
object, a record without an id, a repeated id, a field of the wrong type or form, see
`contract.py`) and lenient about everything else (unknown fields are kept as they are and
written back untouched). Writes are held to the same contract.
"""

from __future__ import annotations

import codecs
import gc
import json
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from revops_pipelines.sandbox.contract import MAX_DEPTH, ContractError, check_record, depth_within
from revops_pipelines.sandbox.journal import Journal

FILES: dict[str, tuple[str, ...]] = {
    "crm": ("Account", "Opportunity", "OpportunityLineItem", "Product2", "Contract"),
    "billing": (
        "customers",
        "products",
        "prices",
        "subscriptions",
        "invoices",
        "invoice_payments",
        "credit_notes",
        "events",
    ),
    "erp": (
        "subsidiary",
        "customer",
        "item",
        "invoice",
        "customerpayment",
        "creditmemo",
        "currencyrate",
    ),
}

# A missing optional file is an empty collection; a missing required file is an error.
OPTIONAL: frozenset[tuple[str, str]] = frozenset(
    {
        ("billing", "credit_notes"),
        ("billing", "events"),
        ("erp", "creditmemo"),
        ("erp", "currencyrate"),
    }
)

# Salesforce spells the record id `Id`; Stripe and NetSuite spell it `id`.
ID_FIELD: dict[str, str] = {"crm": "Id", "billing": "id", "erp": "id"}

# ERP transactions share one id space (SuiteQL's single `transaction` table).
TRANSACTION_FILES: tuple[str, ...] = ("invoice", "customerpayment", "creditmemo")


@dataclass(frozen=True)
class Credentials:
    """What each sandbox system accepts; None accepts any well-formed test credential."""

    crm_client_id: str | None = None
    crm_client_secret: str | None = None
    billing_key: str | None = None
    erp_token: str | None = None


class StateFileError(Exception):
    """A state file the sandbox cannot serve; names the file, the line (1-based) and why."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = reason
        super().__init__(f"{self.path}:{line}: {reason}")


# Called with (collection, record, created) after every write; loading calls nothing.
Listener = Callable[["Collection", dict[str, Any], bool], None]


class Collection:
    """The records of one state file, in file order, with an index by id."""

    def __init__(
        self, *, system: str, name: str, id_field: str, listeners: list[Listener] | None = None
    ) -> None:
        self.listeners = listeners if listeners is not None else []
        self.system = system
        self.name = name
        self.id_field = id_field
        self.records: list[dict[str, Any]] = []
        self.index: dict[str, dict[str, Any]] = {}
        self._positions: dict[str, int] = {}
        # The file's own JSON text of each record not written since loading: lists serve it
        # and persist writes it back without encoding the record again.
        self.raw: dict[str, bytes] = {}
        self.version = 0

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def get(self, record_id: str) -> dict[str, Any] | None:
        return self.index.get(str(record_id))

    def check(self, record: dict[str, Any]) -> None:
        """Raises ContractError naming the first field that breaks the contract."""
        check_record(self.system, self.name, record, id_field=self.id_field)

    def put(self, record: dict[str, Any]) -> bool:
        """Insert the record, or replace the one with the same id in place; True if created.

        A record that breaks the contract raises ContractError and changes nothing.
        """
        self.check(record)
        key = record[self.id_field]
        self.version += 1
        self.raw.pop(key, None)
        position = self._positions.get(key)
        self.index[key] = record
        created = position is None
        if created:
            self._positions[key] = len(self.records)
            self.records.append(record)
        else:
            self.records[position] = record
        for listener in self.listeners:
            listener(self, record, created)
        return created

    def _load(self, path: Path) -> dict[str, int]:
        """Reads the file; returns the line number of each id."""
        id_field = self.id_field
        records = self.records
        index = self.index
        positions = self._positions
        raw = self.raw
        lines: dict[str, int] = {}
        data = path.read_bytes()
        # A BOM is no part of the JSON; left in, it would be served inside the first record.
        data = data.removeprefix(codecs.BOM_UTF8)
        for number, line in enumerate(data.split(b"\n"), start=1):
            line = line.strip()
            if not line:
                continue
            record = _parse_line(line, path=path, number=number)
            try:
                self.check(record)
            except ContractError as error:
                raise StateFileError(path, number, str(error)) from None
            key = record[id_field]
            if key in index:
                reason = f"duplicate {id_field} {key!r} (first on line {lines[key]})"
                raise StateFileError(path, number, f"{id_field}: {reason}")
            index[key] = record
            positions[key] = len(records)
            lines[key] = number
            raw[key] = line
            records.append(record)
        return lines


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_line(line: bytes, *, path: Path, number: int) -> dict[str, Any]:
    try:
        record = json.loads(line, parse_constant=_refuse_constant)
    except RecursionError:
        raise StateFileError(path, number, f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:
        if getattr(error, "msg", "") == "Extra data":
            reason = "more than one JSON value on the line"
        else:
            reason = f"invalid JSON: {error}"
        raise StateFileError(path, number, reason) from None
    if type(record) is not dict:
        raise StateFileError(path, number, "line is not a JSON object")
    # Counting brackets is cheap; only a line with many of them is walked.
    if line.count(b"{") + line.count(b"[") > MAX_DEPTH and not depth_within(record):
        raise StateFileError(path, number, f"nested deeper than {MAX_DEPTH} levels")
    return record


def _as_of(manifest: dict[str, Any], *, path: Path) -> datetime | None:
    """End of the manifest's `as_of` day in UTC: the state describes that whole day."""
    raw = manifest.get("as_of")
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        raise StateFileError(path, 1, f"as_of must be a date string, not {raw!r}")
    try:
        if "T" in raw:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return datetime.combine(date.fromisoformat(raw), time(23, 59, 59), tzinfo=UTC)
    except ValueError:
        raise StateFileError(path, 1, f"as_of {raw!r} is not an ISO date") from None


def _claim_ids(owners: dict[str, tuple[Path, int]], lines: dict[str, int], *, path: Path) -> None:
    for key, number in lines.items():
        if key in owners:
            other, line = owners[key]
            raise StateFileError(
                path, number, f"id: {key!r} is already a transaction in {other.name} line {line}"
            )
        owners[key] = (path, number)


class StateStore:
    """All collections of a state directory; writers hold `lock` and call `journal.commit`."""

    def __init__(self, state_dir: Path, *, as_of: datetime | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.as_of = as_of
        self.lock = threading.RLock()
        self._collections: dict[tuple[str, str], Collection] = {}
        self.journal = Journal(self)
        # Shared by every collection: told of each write, e.g. to deliver webhooks.
        self.listeners: list[Listener] = []

    @classmethod
    def load(cls, state_dir: Path) -> StateStore:
        state_dir = Path(state_dir)
        if not state_dir.is_dir():
            raise StateFileError(state_dir, 0, "state directory does not exist")
        manifest_path = state_dir / "manifest.json"
        as_of = None
        if manifest_path.exists():
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            except ValueError as error:
                raise StateFileError(manifest_path, 1, f"invalid JSON: {error}") from None
            if not isinstance(manifest, dict):
                raise StateFileError(manifest_path, 1, "manifest is not a JSON object")
            as_of = _as_of(manifest, path=manifest_path)
        store = cls(state_dir, as_of=as_of)
        # The cyclic collector would rescan the growing heap of parsed records over and over;
        # pausing it makes loading 100k invoices several times faster.
        collecting = gc.isenabled()
        gc.disable()
        try:
            store._load_files()
            try:
                store.journal = Journal.attach(store)
            except ContractError as error:
                # Writes are checked before they are journaled: only a hand-edited line gets here.
                reason = f"a journaled write breaks the contract: {error}"
                raise StateFileError(store.journal.path, 0, reason) from None
        finally:
            if collecting:
                gc.enable()
        return store

    def _load_files(self) -> None:
        transactions: dict[str, tuple[Path, int]] = {}
        for system, names in FILES.items():
            for name in names:
                collection = Collection(
                    system=system, name=name, id_field=ID_FIELD[system], listeners=self.listeners
                )
                path = self.path(system, name)
                if path.exists():
                    lines = collection._load(path)
                    if system == "erp" and name in TRANSACTION_FILES:
                        _claim_ids(transactions, lines, path=path)
                elif (system, name) not in OPTIONAL:
                    raise StateFileError(path, 0, "required state file is missing")
                self._collections[(system, name)] = collection

    def path(self, system: str, name: str) -> Path:
        return self.state_dir / system / f"{name}.jsonl"

    def collection(self, system: str, name: str) -> Collection:
        try:
            return self._collections[(system, name)]
        except KeyError:
            raise KeyError(f"no state file {system}/{name}.jsonl in the contract") from None

    def version(self, system: str) -> int:
        """Grows with every write to the system, so derived caches know when to rebuild."""
        return sum(c.version for (s, _), c in self._collections.items() if s == system)

    def persist(self, system: str, name: str) -> None:
        """Write one collection back: a temporary file renamed over the old one."""
        collection = self.collection(system, name)
        path = self.path(system, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock:
            raw = collection.raw
            id_field = collection.id_field
            body = b"".join(
                (
                    raw.get(str(record.get(id_field)))
                    or json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
                )
                + b"\n"
                for record in collection.records
            )
            mode = _file_mode(path)
            handle, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(handle, "wb") as temp:
                    temp.write(body)
                    temp.flush()
                    os.fsync(temp.fileno())
                # mkstemp makes 0600 files; the state file keeps the mode it had.
                os.chmod(temp_name, mode)
                os.replace(temp_name, path)
            except BaseException:
                Path(temp_name).unlink(missing_ok=True)
                raise


def _file_mode(path: Path) -> int:
    """The file's permission bits, or what the umask gives a new file."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask
