"""A case register and an audit log on one real backend, plus raw SQL to look underneath.

`world` runs a test once on SQLite and once on the real PostgreSQL
(style.md §25). The raw helpers read every table and, for SQLite, the
database files themselves: what an attacker with a copy of the disk sees.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from broker.audit import PostgresAuditStore, SqliteAuditStore
from broker.audit.log import AuditLog
from broker.audit.store import AuditStore
from broker.cases.crypto import new_data_key
from broker.cases.register import CaseRegister
from broker.cases.store import SqlCaseStore
from broker.convenant import Convenant
from broker.keys import SigningKey, generate_signing_key
from broker.sql import SqlConnection

REGISTER_TABLES = ("cases", "case_secrets", "case_destructions", "case_statistics")


class FixedClock:
    """The audit log's clock (checkpoint times only); the job gets `now` as a parameter."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment


@dataclass
class World:
    name: str
    cases: CaseRegister
    store: SqlCaseStore
    audit: AuditLog
    kek: bytes
    open_register: Callable[[bytes], CaseRegister]
    rows: Callable[[str], list[tuple[Any, ...]]]
    sqlite_files: list[Path] = field(default_factory=list)

    def table_bytes(self) -> bytes:
        """Every cell of the register's tables, as bytes."""
        cells = [
            _as_bytes(cell)
            for table in REGISTER_TABLES
            for row in self.rows(f"SELECT * FROM {table}")  # noqa: S608  # fixed table names
            for cell in row
        ]
        return b"\x1f".join(cells)

    def file_bytes(self) -> bytes:
        """SQLite only: the database file and its write-ahead log, byte for byte."""
        return b"".join(p.read_bytes() for p in self.sqlite_files if p.exists())


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


@pytest.fixture(scope="session")
def audit_key() -> SigningKey:
    return generate_signing_key("EdDSA")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    convenant: Convenant,
    audit_key: SigningKey,
) -> Iterator[World]:
    kek = new_data_key()
    audit_store: AuditStore
    if request.param == "sqlite":
        register_path = tmp_path / "ketenbroker.cases.sqlite3"

        def connect() -> SqlConnection:
            return SqlConnection(dialect="sqlite", sqlite_path=register_path)

        def rows(sql: str) -> list[tuple[Any, ...]]:
            conn = sqlite3.connect(register_path)
            try:
                return list(conn.execute(sql).fetchall())
            finally:
                conn.close()

        audit_store = SqliteAuditStore(tmp_path / "ketenbroker.sqlite3")
        files = [register_path, register_path.with_name(register_path.name + "-wal")]
    else:
        dsn: str = request.getfixturevalue("postgres_dsn")

        def connect() -> SqlConnection:
            return SqlConnection(dialect="postgres", dsn=dsn)

        def rows(sql: str) -> list[tuple[Any, ...]]:
            with psycopg.connect(dsn, autocommit=True) as conn:
                return list(conn.execute(sql).fetchall())

        audit_store = PostgresAuditStore(dsn)
        files = []

    stores: list[SqlCaseStore] = []

    def open_register(with_kek: bytes) -> CaseRegister:
        store = SqlCaseStore(connect(), kek=with_kek)
        stores.append(store)
        return CaseRegister(store=store, convenant=convenant)

    cases = open_register(kek)
    audit = AuditLog(store=audit_store, signing_key=audit_key, clock=FixedClock())
    yield World(
        name=request.param,
        cases=cases,
        store=stores[0],
        audit=audit,
        kek=kek,
        open_register=open_register,
        rows=rows,
        sqlite_files=files,
    )
    for store in stores:
        store.close()
    audit_store.close()
