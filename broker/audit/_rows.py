"""How an entry becomes a table row and a query a WHERE clause, for both SQL stores.

What it does: canonicalises and hashes entries for `append`, pulls out the
columns the filters use, decodes rows back into `StoredEntry`, and builds
the parameterised WHERE clause of `AuditQuery`. Pure functions, no I/O, so
SQLite and PostgreSQL cannot drift apart on what a filter means.

What it does not: talk to a database or choose placeholders' dialect beyond
the one string the caller passes.

Why a private module: the row layout is an implementation detail of the two
stores in this package; `store.py` states the contract.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker.audit.merkle import leaf_hash
from broker.audit.store import AuditQuery, CorruptEntryError, StoredEntry
from broker.canonical import canonical_json

# The columns `decode_row` takes, in order. "index" is quoted because it is a
# reserved word in both SQL dialects.
SELECT_COLUMNS = '"index", leaf_hash, entry'


@dataclass(frozen=True)
class Row:
    """One audit_entries row, ready to insert."""

    index: int
    time: str
    case_id: str | None
    requester: str | None
    provider: str | None
    decision: str | None
    kind: str
    leaf_hash: bytes
    entry_json: str

    def values(self) -> tuple[object, ...]:
        """The values in the stores' INSERT column order."""
        return (
            self.index,
            self.time,
            self.case_id,
            self.requester,
            self.provider,
            self.decision,
            self.kind,
            self.leaf_hash,
            self.entry_json,
        )

    def stored(self) -> StoredEntry:
        """The entry as a reader will get it back: decoded from the stored bytes."""
        return decode_row(self.index, self.leaf_hash, self.entry_json)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _partner(party: object) -> str | None:
    """The partner id of a requester/provider member: {"partner": id} or a bare id."""
    if isinstance(party, Mapping):
        return _text(party.get("partner"))
    return _text(party)


def _case_id(case: object) -> str | None:
    """The case id of a `case` member: {"id": id} or a bare id."""
    if isinstance(case, Mapping):
        return _text(case.get("id"))
    return _text(case)


def make_row(entry: Mapping[str, Any], index: int) -> Row:
    """The row for `entry` at `index`; TypeError or ValueError if it cannot be logged.

    The leaf hash covers the entry *with* its index, so an entry cannot be
    moved to another position without changing its leaf (RFC 9162 §2.1.1
    hashes the leaf bytes only; the index is ours to bind).
    """
    if not isinstance(entry, Mapping):
        raise TypeError(f"expected an entry object, got {type(entry).__name__}")
    time, kind = entry.get("time"), entry.get("kind")
    if not isinstance(time, str) or not isinstance(kind, str):
        raise TypeError(f"expected string `time` and `kind` in the entry, got {time!r}, {kind!r}")
    with_index = {**entry, "index": index}
    return Row(
        index=index,
        time=time,
        case_id=_case_id(entry.get("case")),
        requester=_partner(entry.get("requester")),
        provider=_partner(entry.get("provider")),
        decision=_text(entry.get("decision")),
        kind=kind,
        leaf_hash=leaf_hash(with_index),
        entry_json=canonical_json(with_index).decode("utf-8"),
    )


def _refuse_constant(name: str) -> object:
    raise ValueError(f"expected JSON without {name}")


def decode_row(index: object, leaf: object, entry_json: object) -> StoredEntry:
    """A StoredEntry from raw column values; CorruptEntryError if they do not decode."""
    if not isinstance(index, int) or not isinstance(leaf, bytes | memoryview):
        raise CorruptEntryError(
            f"expected an integer index and a binary leaf hash, got {index!r} and {type(leaf)}"
        )
    if not isinstance(entry_json, str):
        raise CorruptEntryError(f"expected entry {index} as text, got {type(entry_json)}")
    try:
        # JCS never writes NaN or Infinity; a row holding them was not written by us.
        entry = json.loads(entry_json, parse_constant=_refuse_constant)
    except ValueError as e:
        raise CorruptEntryError(f"entry {index} is not valid JSON: {e}") from e
    if not isinstance(entry, dict):
        raise CorruptEntryError(f"expected entry {index} to be a JSON object")
    return StoredEntry(index=index, leaf_hash=bytes(leaf), entry=entry)


def query_sql(q: AuditQuery, placeholder: str) -> tuple[str, list[object]]:
    """The SELECT for `q` with its parameters; rows come in `decode_row`'s order.

    Only fixed column names are spliced in; every value is a parameter.
    """
    conditions: list[str] = []
    params: list[object] = []
    simple = (("case_id", q.case), ("decision", q.decision))
    for column, value in simple:
        if value is not None:
            conditions.append(f"{column} = {placeholder}")
            params.append(value)
    if q.partner is not None:
        conditions.append(f"(requester = {placeholder} OR provider = {placeholder})")
        params += [q.partner, q.partner]
    if q.time_from is not None:
        conditions.append(f"time >= {placeholder}")
        params.append(q.time_from)
    if q.time_to is not None:
        conditions.append(f"time < {placeholder}")
        params.append(q.time_to)
    if q.after_index is not None:
        conditions.append(f'"index" > {placeholder}')
        params.append(q.after_index)
    if q.before_index is not None:
        conditions.append(f'"index" < {placeholder}')
        params.append(q.before_index)
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    params.append(q.limit)
    # Fixed column names only; every value is a parameter.
    sql = f'SELECT {SELECT_COLUMNS} FROM audit_entries {where}ORDER BY "index" LIMIT {placeholder}'  # noqa: S608
    return sql, params
