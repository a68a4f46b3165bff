"""Fixtures for the audit tests: both real stores, a fixed clock, a broker key.

`backend` runs a test once on SQLite and once on the real PostgreSQL (style.md
§25: one conformance suite, every implementation). Each backend also exposes
raw SQL on the same database, which the tests use to play the attacker or the
failing disk; the store under test never sees a double.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from broker.audit import (
    AuditQuery,
    AuditStore,
    PostgresAuditStore,
    SqliteAuditStore,
    StoredEntry,
)
from broker.keys import PublicKeySet, SigningKey, TrustedKey, generate_signing_key

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class Backend:
    """One store implementation on one database, plus raw SQL on that database."""

    name: str
    open_store: Callable[[], AuditStore]
    execute: Callable[[str], None]
    # Drops the triggers that refuse UPDATE/DELETE: what an attacker with
    # database access does first.
    drop_append_only_guard: str
    # Makes every INSERT fail inside the database, as a full disk would.
    refuse_inserts: str
    allow_inserts: str
    opened: list[AuditStore] = field(default_factory=list)

    def store(self) -> AuditStore:
        store = self.open_store()
        self.opened.append(store)
        return store


def _sqlite_execute(path: Path) -> Callable[[str], None]:
    def execute(sql: str) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.executescript(sql)
        finally:
            conn.close()

    return execute


def _postgres_execute(dsn: str) -> Callable[[str], None]:
    def execute(sql: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql)

    return execute


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, sqlite_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        chosen = Backend(
            name="sqlite",
            open_store=lambda: SqliteAuditStore(sqlite_path),
            execute=_sqlite_execute(sqlite_path),
            drop_append_only_guard=(
                "DROP TRIGGER audit_entries_no_update; DROP TRIGGER audit_entries_no_delete;"
            ),
            refuse_inserts=(
                "CREATE TRIGGER refuse_all BEFORE INSERT ON audit_entries"
                " BEGIN SELECT RAISE(ABORT, 'disk says no'); END;"
            ),
            allow_inserts="DROP TRIGGER refuse_all;",
        )
    else:
        dsn: str = request.getfixturevalue("postgres_dsn")
        chosen = Backend(
            name="postgres",
            open_store=lambda: PostgresAuditStore(dsn),
            execute=_postgres_execute(dsn),
            drop_append_only_guard="DROP TRIGGER audit_entries_no_change ON audit_entries",
            refuse_inserts=(
                "ALTER TABLE audit_entries ADD CONSTRAINT refuse_all CHECK (false) NOT VALID"
            ),
            allow_inserts="ALTER TABLE audit_entries DROP CONSTRAINT refuse_all",
        )
    yield chosen
    for store in chosen.opened:
        store.close()


@pytest.fixture
def store(backend: Backend) -> AuditStore:
    return backend.store()


class FixedClock:
    """A clock that says what the test tells it to."""

    def __init__(self, moment: datetime = T0) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture(scope="session")
def broker_key() -> SigningKey:
    return generate_signing_key("EdDSA")


POLL_SECONDS = 10.0  # bound on waiting for threads to queue; they take microseconds


class CountingStore:
    """A real store, with each append's size recorded and the first append held at a gate."""

    def __init__(self, inner: AuditStore, *, gated: bool = False) -> None:
        self.inner = inner
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.at_gate = threading.Event()
        if not gated:
            self.gate.set()

    def append(self, entries: Sequence[dict[str, Any]]) -> list[StoredEntry]:
        self.sizes.append(len(entries))
        if not self.gate.is_set():
            self.at_gate.set()
            self.gate.wait(POLL_SECONDS)
        return self.inner.append(entries)

    def size(self) -> int:
        return self.inner.size()

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        return self.inner.leaf_hashes(start, end)

    def get(self, index: int) -> StoredEntry | None:
        return self.inner.get(index)

    def query(self, q: AuditQuery) -> list[StoredEntry]:
        return self.inner.query(q)

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()


def keyset_of(*keys: SigningKey) -> PublicKeySet:
    return PublicKeySet(TrustedKey(kid=k.kid, alg=k.alg, public_key=k.public_key) for k in keys)


def make_entry(
    n: int,
    *,
    case: str | None = "case-1",
    requester: str | None = "gemeente",
    provider: str | None = "politie",
    decision: str = "permit",
    time: datetime | None = None,
) -> dict[str, Any]:
    """An exchange-shaped entry; `n` makes it distinct."""
    moment = time or T0 + timedelta(seconds=n)
    entry: dict[str, Any] = {
        "kind": "exchange",
        "time": moment.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "trace_id": f"00-{n:032x}-{n:016x}-01",
        "decision": decision,
        "fields_disclosed": ["adres", "meldingen"],
    }
    if case is not None:
        entry["case"] = case
    if requester is not None:
        entry["requester"] = {"partner": requester, "user": "u1", "function": "regisseur"}
    if provider is not None:
        entry["provider"] = {"partner": provider}
    return entry
