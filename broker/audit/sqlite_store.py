"""The embedded audit store: one SQLite file, the default for `make demo`.

What it does: implements `AuditStore` (see `store.py` for the contract) on a
SQLite database in WAL mode with `synchronous=FULL`, so a committed append
has been fsynced to the write-ahead log before `append` returns; in WAL mode
`synchronous=NORMAL` could lose the last commits on power loss. WAL with
FULL rather than a rollback journal: one fsync of the log per commit
instead of journal plus database, and readers do not block the writer.
A group commit's batch (`AuditLog`) is one such commit, so its entries
share one fsync and stand or fall together.

What it does not: share one connection between threads unguarded, or offer
any way to change or delete an entry. Triggers refuse UPDATE and DELETE on
the table as well, so other code sharing the file cannot rewrite the log by
accident; a deliberate rewrite is what `AuditLog.verify` and consistency
proofs against old checkpoints catch.

Why one connection behind a lock: the broker calls from a threadpool, and a
single writer is what SQLite allows anyway. Appends run in `BEGIN IMMEDIATE`
transactions, which take SQLite's write lock before the next index is read,
so several processes on the same file still get one gap-free sequence.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from broker.audit._rows import decode_row, make_row, query_sql
from broker.audit.row_sources import SqliteRowSource
from broker.audit.store import AuditQuery, AuditReadError, RawRow, StoredEntry, check_page
from broker.errors import AuditWriteError

# How long a writer waits for another process's write lock before the
# append fails (and the broker answers 503 rather than disclosing unlogged).
BUSY_TIMEOUT_SECONDS = 10.0

_SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS audit_entries (
    "index"   INTEGER PRIMARY KEY CHECK ("index" >= 0),
    time      TEXT NOT NULL,
    case_id   TEXT,
    requester TEXT,
    provider  TEXT,
    decision  TEXT,
    kind      TEXT NOT NULL,
    leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32),
    entry     TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS audit_entries_case ON audit_entries (case_id, "index");
CREATE INDEX IF NOT EXISTS audit_entries_requester ON audit_entries (requester, "index");
CREATE INDEX IF NOT EXISTS audit_entries_provider ON audit_entries (provider, "index");
CREATE INDEX IF NOT EXISTS audit_entries_decision ON audit_entries (decision, "index");
CREATE INDEX IF NOT EXISTS audit_entries_time ON audit_entries (time, "index");
-- A partner's entries in a time window (audit:own with from/to): see _rows.query_sql.
CREATE INDEX IF NOT EXISTS audit_entries_requester_time ON audit_entries (requester, time, "index");
CREATE INDEX IF NOT EXISTS audit_entries_provider_time ON audit_entries (provider, time, "index");
CREATE TRIGGER IF NOT EXISTS audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END;
COMMIT;
"""

_INSERT = (
    'INSERT INTO audit_entries ("index", time, case_id, requester, provider, decision, kind,'
    " leaf_hash, entry) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_NEXT_INDEX = 'SELECT COALESCE(MAX("index") + 1, 0) FROM audit_entries'


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Durability settings (see the module docstring) and the schema."""
    (mode,) = conn.execute("PRAGMA journal_mode=WAL").fetchone()
    if mode != "wal":
        raise AuditWriteError(f"expected journal_mode wal at {path}, got {mode!r}")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(_SCHEMA)


class SqliteAuditStore:
    """`AuditStore` on a SQLite file; created with its schema if missing."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so the
            # module never opens a transaction behind our back.
            conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as e:
            raise AuditWriteError(f"cannot open the audit store at {path}: {e}") from e
        try:
            _prepare(conn, path)
        except sqlite3.Error as e:
            conn.close()
            raise AuditWriteError(f"cannot create the audit schema at {path}: {e}") from e
        except AuditWriteError:
            conn.close()
            raise
        self._conn = conn

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise AuditReadError(f"the audit store at {self._path} is closed")
        return self._conn

    def append(self, entries: Sequence[dict[str, Any]]) -> list[StoredEntry]:
        with self._lock:
            if self._conn is None:
                raise AuditWriteError(f"the audit store at {self._path} is closed")
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    (first,) = conn.execute(_NEXT_INDEX).fetchone()
                    rows = [make_row(entry, first + offset) for offset, entry in enumerate(entries)]
                    conn.executemany(_INSERT, [row.values() for row in rows])
                    conn.execute("COMMIT")
                finally:
                    # Reached with a transaction open only when something
                    # above failed: undo it all, nothing half-written.
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
            except (sqlite3.Error, ValueError, TypeError) as e:
                raise AuditWriteError(
                    f"could not append {len(entries)} audit entries at {self._path}: {e}"
                ) from e
        return [row.stored() for row in rows]

    def size(self) -> int:
        with self._lock:
            try:
                (size,) = self._open().execute(_NEXT_INDEX).fetchone()
            except sqlite3.Error as e:
                raise AuditReadError(f"cannot read the audit size at {self._path}: {e}") from e
        return int(size)

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        with self._lock:
            try:
                rows = (
                    self._open()
                    .execute(
                        'SELECT leaf_hash FROM audit_entries WHERE "index" >= ? AND "index" < ?'
                        ' ORDER BY "index"',
                        (start, end),
                    )
                    .fetchall()
                )
            except sqlite3.Error as e:
                raise AuditReadError(f"cannot read leaf hashes at {self._path}: {e}") from e
        return [bytes(leaf) for (leaf,) in rows]

    def read_rows(self, after_index: int, limit: int) -> list[RawRow]:
        """Up to `limit` rows after `after_index` as stored: (index, leaf hash, entry bytes)."""
        check_page(after_index, limit)
        with self._lock:
            try:
                rows = (
                    self._open()
                    .execute(
                        'SELECT "index", leaf_hash, CAST(entry AS BLOB) FROM audit_entries'
                        ' WHERE "index" > ? ORDER BY "index" LIMIT ?',
                        (after_index, limit),
                    )
                    .fetchall()
                )
            except sqlite3.Error as e:
                raise AuditReadError(f"cannot read rows at {self._path}: {e}") from e
        return rows

    def row_source(self) -> SqliteRowSource:
        return SqliteRowSource(self._path)

    def get(self, index: int) -> StoredEntry | None:
        with self._lock:
            try:
                row = (
                    self._open()
                    .execute(
                        'SELECT "index", leaf_hash, entry FROM audit_entries WHERE "index" = ?',
                        (index,),
                    )
                    .fetchone()
                )
            except sqlite3.Error as e:
                raise AuditReadError(f"cannot read entry {index} at {self._path}: {e}") from e
        return None if row is None else decode_row(*row)

    def query(self, q: AuditQuery) -> list[StoredEntry]:
        sql, params = query_sql(q, "?")
        with self._lock:
            try:
                rows = self._open().execute(sql, params).fetchall()
            except sqlite3.Error as e:
                raise AuditReadError(f"cannot query the audit store at {self._path}: {e}") from e
        return [decode_row(*row) for row in rows]

    def ping(self) -> None:
        with self._lock:
            try:
                conn = self._open()
                conn.execute("SELECT 1 FROM audit_entries LIMIT 1").fetchall()
                # Taking the write lock proves the file is writable now.
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
            except (sqlite3.Error, AuditReadError) as e:
                raise AuditWriteError(f"the audit store at {self._path} is unusable: {e}") from e

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
