"""The audit store interface: where entries become durable, in index order.

What it does: defines `AuditStore`, the one protocol both backends
(`SqliteAuditStore`, `PostgresAuditStore`) implement, with the values it
trades in (`StoredEntry`, `AuditQuery`). The conformance suite in
`tests/audit/test_store_conformance.py` runs against every implementation.

What it does not: hash trees, sign, or decide who may read what. The store
only assigns indexes, keeps the canonical entry bytes with their leaf hash,
and answers filtered reads; `AuditLog` builds the tree on top.

Why a protocol: the broker runs on embedded SQLite by default and on
PostgreSQL in production (style.md §2); the log above must not care.

The contract every implementation keeps:

* `append` gives the entries consecutive indexes from the current size, sets
  `"index"` in each, hashes the entry *with* its index (`merkle.leaf_hash`),
  stores the RFC 8785 bytes, and commits durably before it returns. On any
  failure it raises `AuditWriteError` and writes nothing (one transaction).
  Several stores on the same database still produce one gap-free sequence.
* Entries are append-only: there is no method to change or remove one.
* Every method is safe to call from several threads at once.
* A read that fails raises `AuditReadError` (a row that cannot be decoded:
  its subclass `CorruptEntryError`), never a foreign exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from broker.errors import BackendUnavailableError, InvalidRequestError

DEFAULT_QUERY_LIMIT = 100
MAX_QUERY_LIMIT = 1000  # one page; bounds the response and the rows a query reads
MAX_FILTER_CHARS = 200  # as entries.MAX_UNTRUSTED_CHARS: no real id or time is longer


class AuditReadError(BackendUnavailableError):
    """The audit store could not be read (writes fail with AuditWriteError)."""

    code = "audit_unavailable"
    public_detail = "The audit log cannot be read at the moment."


class CorruptEntryError(AuditReadError):
    """A stored row cannot be decoded into an entry: the store is damaged."""

    public_detail = "The audit log is damaged; an operator has to look at it."


@dataclass(frozen=True)
class StoredEntry:
    """One entry as stored: its index, its leaf hash, and the entry with `"index"`."""

    index: int
    leaf_hash: bytes
    entry: dict[str, Any]


@dataclass(frozen=True)
class AuditQuery:
    """Filters for reading entries; every filter left at None matches everything.

    `partner` matches an entry whose requester or provider is that partner.
    `time_from` is inclusive and `time_to` exclusive; both are compared as
    strings with the stored `time`, so pass them as `broker.clock.rfc3339`
    renders them (UTC, microseconds, `Z`). `after_index` is the cursor: the
    last index the caller has seen (-1 or None: none yet). `before_index` (exclusive) pins a read to
    a checkpoint's size, e.g. for an export that ends with that checkpoint.
    """

    case: str | None = None
    partner: str | None = None
    decision: str | None = None
    time_from: str | None = None
    time_to: str | None = None
    after_index: int | None = None
    before_index: int | None = None
    limit: int = DEFAULT_QUERY_LIMIT

    def __post_init__(self) -> None:
        # These come from query strings at the API edge: bound them here so
        # no backend sees an unbounded value (style.md §14).
        for name in ("case", "partner", "decision", "time_from", "time_to"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or len(value) > MAX_FILTER_CHARS):
                raise InvalidRequestError(
                    f"expected {name} as a string of at most {MAX_FILTER_CHARS} characters,"
                    f" got {str(value)[:MAX_FILTER_CHARS]!r}"
                )
        # after_index -1 means "seen nothing yet", like None.
        for name, lowest in (("after_index", -1), ("before_index", 0)):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < lowest
            ):
                raise InvalidRequestError(
                    f"expected {name} as an integer >= {lowest}, got {value!r}"
                )
        if (
            not isinstance(self.limit, int)
            or isinstance(self.limit, bool)
            or not 1 <= self.limit <= MAX_QUERY_LIMIT
        ):
            raise InvalidRequestError(
                f"expected 1 <= limit <= {MAX_QUERY_LIMIT}, got {self.limit!r}"
            )


class AuditStore(Protocol):
    """Durable, append-only, index-ordered storage of audit entries."""

    def append(self, entries: Sequence[dict[str, Any]]) -> list[StoredEntry]:
        """Store `entries` under the next indexes, durably, all or nothing."""
        ...

    def size(self) -> int:
        """How many entries are stored (the next index)."""
        ...

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        """The leaf hashes of the stored indexes in [start, end), in index order."""
        ...

    def get(self, index: int) -> StoredEntry | None: ...

    def query(self, q: AuditQuery) -> list[StoredEntry]:
        """Entries matching `q`, in index order, at most `q.limit`."""
        ...

    def ping(self) -> None:
        """Raise AuditWriteError unless the store can be read and written."""
        ...

    def close(self) -> None: ...
