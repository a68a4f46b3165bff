"""One small seam over SQLite and PostgreSQL for the broker's own tables.

The case register runs on SQLite in the embedded profile and on PostgreSQL in
production. Queries are written once with `?` placeholders; this module
translates them for psycopg and serialises access to one connection per
store (both drivers' connections are not safe to share between threads).
It is not an ORM and hides no transaction: callers say when to commit.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

import psycopg

Dialect = Literal["sqlite", "postgres"]


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    @property
    def rowcount(self) -> int: ...


class SqlConnection:
    """A connection, its dialect, and the lock that serialises its use."""

    def __init__(self, *, dialect: Dialect, sqlite_path: Path | None = None, dsn: str = "") -> None:
        self.dialect = dialect
        self._lock = threading.Lock()
        self._closed = False
        self._raw: Any
        if dialect == "sqlite":
            if sqlite_path is None:
                raise ValueError("expected a sqlite_path for the sqlite dialect, got None")
            sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            self._raw = sqlite3.connect(sqlite_path, check_same_thread=False, isolation_level=None)
            self._raw.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed row survives power loss (log before disclose).
            self._raw.execute("PRAGMA synchronous=FULL")
            self._raw.execute("PRAGMA busy_timeout=5000")
        else:
            self._dsn = dsn
            self._raw = psycopg.connect(dsn, autocommit=True)

    def blob_type(self) -> str:
        return "BLOB" if self.dialect == "sqlite" else "BYTEA"

    def _translate(self, sql: str) -> str:
        return sql if self.dialect == "sqlite" else sql.replace("?", "%s")

    def _usable_postgres(self) -> None:
        """Replace a connection lost in a PostgreSQL outage, so the register recovers.

        psycopg marks a connection `broken` after a network or server failure
        and never heals it; without this, every later call would stay a 503.
        """
        if self._closed:
            raise psycopg.OperationalError("the connection was closed by its owner")
        if self._raw.closed or self._raw.broken:
            try:
                self._raw.close()
            finally:
                self._raw = psycopg.connect(self._dsn, autocommit=True)

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """One atomic unit: commit on success, roll back on any error."""
        with self._lock:
            if self.dialect == "postgres":
                self._usable_postgres()
            cursor = _TranslatingCursor(self._raw.cursor(), self._translate)
            if self.dialect == "sqlite":
                self._raw.execute("BEGIN IMMEDIATE")
                try:
                    yield cursor
                except BaseException:
                    self._raw.execute("ROLLBACK")
                    raise
                self._raw.execute("COMMIT")
            else:
                with self._raw.transaction():
                    yield cursor

    def close(self) -> None:
        with self._lock:
            self._closed = True  # an owner's close is final: never reconnect after it
            self._raw.close()


class _TranslatingCursor:
    def __init__(self, raw: Any, translate: Any) -> None:
        self._raw = raw
        self._translate = translate

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._raw.execute(self._translate(sql), tuple(params))

    def fetchone(self) -> Any:
        return self._raw.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._raw.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._raw.rowcount)
