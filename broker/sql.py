"""One small seam over SQLite and PostgreSQL for the broker's own tables.

The case register runs on SQLite in the embedded profile and on PostgreSQL in
production. Queries are written once with `?` placeholders; this module
translates them for psycopg and serialises access to one connection per
store (both drivers' connections are not safe to share between threads).
It is not an ORM and hides no transaction: callers say when to commit.

A transaction is durable (flushed to disk before COMMIT returns) unless the
caller opens it with `durable=False`: then its commit survives a crash of
the broker process but may be lost, whole, in a power cut or an
operating-system crash (SQLite `synchronous=NORMAL` in WAL mode, PostgreSQL
`synchronous_commit=off`; on SQLite the next durable commit on the same
file flushes it too). Only the decision log asks for that (docs/decisions.md,
"Decision log commits"); the case register never does.
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
# Advisory lock key (any bigint, fixed) for the broker's own schema: "kbschema".
SCHEMA_LOCK_KEY = int.from_bytes(b"kbschema", "big")


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
    def transaction(self, *, durable: bool = True) -> Iterator[Cursor]:
        """One atomic unit: commit on success, roll back on any error.

        `durable=False` skips the flush at commit (see the module docstring).
        """
        with self._lock:
            if self.dialect == "postgres":
                self._usable_postgres()
            cursor = _TranslatingCursor(self._raw.cursor(), self._translate)
            if self.dialect == "sqlite":
                # A connection setting, so every transaction sets its own:
                # none can inherit NORMAL from a failed one before it.
                # FULL: a committed row survives power loss (log before disclose).
                self._raw.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._raw.execute("BEGIN IMMEDIATE")
                try:
                    yield cursor
                except BaseException:
                    self._raw.execute("ROLLBACK")
                    raise
                self._raw.execute("COMMIT")
            else:
                with self._raw.transaction():
                    if not durable:
                        # LOCAL: ends with this transaction, whatever happens.
                        cursor.execute("SET LOCAL synchronous_commit TO off")
                    yield cursor

    @contextmanager
    def schema_transaction(self) -> Iterator[Cursor]:
        """A transaction for CREATE ... IF NOT EXISTS, safe when processes start at once.

        PostgreSQL's IF NOT EXISTS is not atomic: two sessions creating the
        same table together can both pass the check, and one then fails on
        the catalog's unique index. A transaction-scoped advisory lock
        makes them take turns (released by COMMIT or ROLLBACK). SQLite's
        BEGIN IMMEDIATE already does.
        """
        with self.transaction() as cursor:
            if self.dialect == "postgres":
                cursor.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK_KEY,))
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
