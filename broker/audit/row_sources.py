"""Where another process can read a store's rows: the SQLite file or the PostgreSQL database.

What it does: `SqliteRowSource` and `PostgresRowSource` are small picklable
values naming a store's database; `read_range(start, end)` opens it (read
only for SQLite), returns the rows with start <= index < end as stored
(index, leaf hash, entry bytes) and closes it again. `AuditLog.verify`
hands one range to each worker process, so the rows never pass through the
parent.

What it does not: write, decode entries, or keep a connection open.

Why separate from the stores: a store owns a live connection and a lock,
neither of which may cross into another process; a source is only the
address.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psycopg

from broker.audit.store import AuditReadError, RawRow

_RANGE_SQL = (
    'SELECT "index", leaf_hash, {entry} FROM audit_entries'
    ' WHERE "index" >= {p} AND "index" < {p} ORDER BY "index"'
)


class RowSource(Protocol):
    """A picklable address of a store's rows, readable from any process."""

    def read_range(self, start: int, end: int) -> list[RawRow]:
        """The rows with start <= index < end, in index order."""
        ...


@dataclass(frozen=True)
class SqliteRowSource:
    path: Path

    def read_range(self, start: int, end: int) -> list[RawRow]:
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            try:
                sql = _RANGE_SQL.format(entry="CAST(entry AS BLOB)", p="?")
                return conn.execute(sql, (start, end)).fetchall()
            finally:
                conn.close()
        except sqlite3.Error as e:
            raise AuditReadError(f"cannot read rows {start} to {end} at {self.path}: {e}") from e


@dataclass(frozen=True)
class PostgresRowSource:
    dsn: str

    def read_range(self, start: int, end: int) -> list[RawRow]:
        try:
            # A connection per range (a few ms against ~100 ms of checking
            # a range): none is left open in any process afterwards.
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                rows = conn.execute(
                    _RANGE_SQL.format(entry="entry", p="%s"), (start, end)
                ).fetchall()
        except psycopg.Error as e:
            # The DSN may carry a password: name the cause, not the DSN.
            raise AuditReadError(f"cannot read rows {start} to {end}: {e}") from e
        return [(index, bytes(leaf), entry.encode()) for index, leaf, entry in rows]
