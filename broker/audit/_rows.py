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

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from broker.audit.merkle import LEAF_PREFIX
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
    # One canonicalisation serves both the stored text and the leaf: it is
    # the costly step of an append (RFC 8785 in pure Python), and the leaf
    # is by definition the hash of exactly these bytes.
    canonical = canonical_json({**entry, "index": index})
    return Row(
        index=index,
        time=time,
        case_id=_case_id(entry.get("case")),
        requester=_partner(entry.get("requester")),
        provider=_partner(entry.get("provider")),
        decision=_text(entry.get("decision")),
        kind=kind,
        leaf_hash=leaf_hash_of_canonical(canonical),
        entry_json=canonical.decode("utf-8"),
    )


def leaf_hash_of_canonical(canonical: bytes) -> bytes:
    """`merkle.leaf_hash` of the entry whose RFC 8785 bytes are `canonical`."""
    return hashlib.sha256(LEAF_PREFIX + canonical).digest()


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


def _conditions(q: AuditQuery, placeholder: str) -> tuple[list[str], list[object]]:
    """The WHERE conditions of `q` except the partner's, with their parameters."""
    conditions: list[str] = []
    params: list[object] = []
    simple = (("case_id", q.case), ("decision", q.decision))
    for column, value in simple:
        if value is not None:
            conditions.append(f"{column} = {placeholder}")
            params.append(value)
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
    return conditions, params


def _plain_sql(conditions: list[str], placeholder: str) -> str:
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    # Fixed column names only; every value is a parameter.
    return (
        f"SELECT {SELECT_COLUMNS} FROM audit_entries {where}"  # noqa: S608
        f'ORDER BY "index" LIMIT {placeholder}'
    )


def query_sql(q: AuditQuery, placeholder: str) -> tuple[str, list[object]]:
    """The SELECT for `q` with its parameters; rows come in `decode_row`'s order.

    Only fixed column names are spliced in; every value is a parameter.
    Every form selects the same rows: the first `q.limit` matches by index.
    They differ only in the plan they lead both engines to; the figures in
    the comments are bench/audit_scale.py's, 10^6 entries over five years,
    one page of 100, before and after.
    """
    conditions, params = _conditions(q, placeholder)
    timed = q.time_from is not None or q.time_to is not None
    # Times grow with the index, which neither planner knows: walking the
    # primary key and filtering on time reads every entry before the window
    # (PostgreSQL: 270 ms for a month near the end). Ordering by
    # `"index" + 0` takes the primary key out of the race, so the window is
    # read from the (time, "index") index and only its indexes are sorted:
    # a month costs the same at any size (2 ms), and a window costs what it
    # holds (the first five months of the log: 6 ms instead of 0.1 ms).
    order = '"index" + 0' if timed else '"index"'
    if q.case is not None or (q.partner is None and (not timed or q.decision is not None)):
        # A case holds a few hundred entries: its index wins in every
        # engine. A decision with a time window: both plans cost alike in
        # PostgreSQL and SQLite picks the better one itself.
        if q.partner is not None:
            conditions.append(f"(requester = {placeholder} OR provider = {placeholder})")
            params += [q.partner, q.partner]
        return _plain_sql(conditions, placeholder), [*params, q.limit]
    if q.partner is None:
        inner = (
            f'SELECT "index" FROM audit_entries WHERE {" AND ".join(conditions)}'  # noqa: S608
            f" ORDER BY {order} LIMIT {placeholder}"
        )
        inner_params = [*params, q.limit]
    else:
        # A partner is the requester or the provider. Written as one OR,
        # SQLite collects every match of the two indexes and sorts them
        # before the LIMIT (170 ms for the regisseur's first page, growing
        # with the log). Each branch here walks its own (column, "index")
        # index in order and stops after `limit` rows (0.1 ms). The same
        # rows: each of the first `limit` matches of the OR is among the
        # first `limit` of its branch, whose matches are a subset.
        branches: list[str] = []
        inner_params = []
        for column in ("requester", "provider"):
            where = " AND ".join([f"{column} = {placeholder}", *conditions])
            branches.append(
                f'SELECT "index" FROM (SELECT "index" FROM audit_entries WHERE {where}'  # noqa: S608
                f" ORDER BY {order} LIMIT {placeholder}) AS by_{column}"
            )
            inner_params += [q.partner, *params, q.limit]
        inner = " UNION ALL ".join(branches)
    # Indexes first, then the entries of the page only.
    sql = (
        f'SELECT {SELECT_COLUMNS} FROM audit_entries WHERE "index" IN ({inner})'  # noqa: S608
        f' ORDER BY "index" LIMIT {placeholder}'
    )
    return sql, [*inner_params, q.limit]
