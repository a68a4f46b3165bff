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
Verification has a second, optional one, `RowReader`: rows as stored, in
big pages, and a `row_sources.RowSource` that worker processes can read
from; `AuditLog.verify` falls back to `query` for a store without it.

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
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from broker.errors import BackendUnavailableError, InvalidRequestError

if TYPE_CHECKING:
    from broker.audit.row_sources import RowSource

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


# One row as stored: (index, leaf hash, the entry's RFC 8785 bytes), for verifiers.
RawRow = tuple[int, bytes, bytes]
MAX_ROW_PAGE = 50_000  # rows per `read_rows` call: ~60 MB of entries at most


def check_page(after_index: int, limit: int) -> None:
    """Refuse a `read_rows` page outside its bounds (internal callers only)."""
    if after_index < -1 or not 1 <= limit <= MAX_ROW_PAGE:
        raise ValueError(
            f"expected after_index >= -1 and 1 <= limit <= {MAX_ROW_PAGE},"
            f" got {after_index} and {limit}"
        )


@runtime_checkable
class RowReader(Protocol):
    """A store that can hand verifiers its rows undecoded, in big pages.

    Both stores here implement it; `AuditLog.verify` uses it when present
    and otherwise reads decoded entries through `query`. Not part of
    `AuditStore`, so a wrapper around a store (a benchmark's, a test's)
    remains a valid store without it.
    """

    def read_rows(self, after_index: int, limit: int) -> list[RawRow]:
        """Up to `limit` rows with index > `after_index`, in index order."""
        ...

    def row_source(self) -> RowSource:
        """A picklable `row_sources.RowSource` for reading the rows from other processes."""
        ...


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
