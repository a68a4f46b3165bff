"""The cost of one durable commit on this machine, SQLite and PostgreSQL.

What it does: times, under a count and a time cap,
* `sqlite_commit`: one small INSERT and COMMIT in a scratch SQLite file
  with the audit store's settings (WAL, synchronous=FULL, broker.audit.
  sqlite_store), so each COMMIT waits for its fsync;
* `postgres_commit`: one small INSERT and COMMIT in a scratch database
  with `synchronous_commit = on` (what PostgresAuditStore sets), so each
  COMMIT waits for the WAL flush;
* `store_append`: one realistic audit entry through the real store's
  `append` (the commit plus the index lookup, row building and hashing), as
  context for the bare commit.

What it does not: include the Merkle tree or the checkpoint signature,
which the exchange figures contain anyway.

Why: the issue's latency target is "direct + one durable commit + 1 ms".
The commit's cost is this machine's disk, not the broker's code, so it
is measured in the same run as the exchanges it is compared with.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg

from bench.loggen import generate_entries, load_example_convenant
from bench.scratch import scratch_folder
from bench.stats import summarize, time_calls
from broker.audit import PostgresAuditStore, SqliteAuditStore

ROUNDS = 300
SECONDS = 3.0
WARMUP = 10
ROW = b"x" * 200  # about a small audit row's payload


def sqlite_commit(*, rounds: int = ROUNDS, seconds: float = SECONDS) -> dict[str, Any]:
    with scratch_folder("bench-commit-") as folder:
        conn = sqlite3.connect(folder / "commit.sqlite3", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")

            def commit() -> None:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO t (body) VALUES (?)", (ROW,))
                conn.execute("COMMIT")

            samples = time_calls(commit, rounds=rounds, seconds=seconds, warmup=WARMUP)
        finally:
            conn.close()
    return {**summarize(samples), "settings": "WAL, synchronous=FULL"}


def postgres_commit(dsn: str, *, rounds: int = ROUNDS, seconds: float = SECONDS) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_commit (id bigserial PRIMARY KEY, body bytea)")

        def commit() -> None:
            with conn.transaction():
                conn.execute("SET LOCAL synchronous_commit = on")
                conn.execute("INSERT INTO bench_commit (body) VALUES (%s)", (ROW,))

        samples = time_calls(commit, rounds=rounds, seconds=seconds, warmup=WARMUP)
        conn.execute("DROP TABLE bench_commit")
    return {**summarize(samples), "settings": "synchronous_commit=on"}


def _entries() -> Iterator[dict[str, Any]]:
    return generate_entries(
        count=ROUNDS + WARMUP + 1,
        start=datetime(2026, 1, 5, tzinfo=UTC),
        years=1.0,
        seed=6,
        partners=load_example_convenant(),
        cases=50,
    )


def store_append(
    backend: str, *, dsn: str | None = None, seconds: float = SECONDS
) -> dict[str, Any]:
    """One realistic entry per `append` through the real store (one transaction each)."""
    entries = _entries()
    with scratch_folder("bench-append-") as folder:
        if backend == "sqlite":
            store: SqliteAuditStore | PostgresAuditStore = SqliteAuditStore(
                folder / "audit.sqlite3"
            )
        elif dsn is not None:
            store = PostgresAuditStore(dsn)
        else:
            raise ValueError("expected a DSN for the postgres store")
        try:
            pool = itertools.cycle(list(entries))
            samples = time_calls(
                lambda: store.append([next(pool)]), rounds=ROUNDS, seconds=seconds, warmup=WARMUP
            )
        finally:
            store.close()
    return summarize(samples)
