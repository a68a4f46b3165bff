"""Throw-away backends for a bench run: a fresh PostgreSQL database, a Redis namespace.

What it does: `scratch_folder()` makes a temporary folder under var/ (the
embedded audit log's own place, on the disk whose fsync is measured, not
a RAM-backed /tmp) and removes it afterwards. `scratch_database()` creates
a uniquely named database on the benchmark's PostgreSQL server (127.0.0.1:5432 unless
KETENBROKER_BENCH_POSTGRES_ADMIN_DSN says otherwise), yields its DSN, and
drops it (WITH (FORCE)) however the block ends. `scratch_namespace()`
yields a unique Redis key prefix and deletes the keys under it afterwards,
a bounded number of SCAN rounds.

What it does not: touch any database or key it did not create.

Why: production-like figures need the production backends, and a bench
run must leave no state behind, as the tests do (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import redis

from broker.settings import PROJECT_ROOT

POSTGRES_ADMIN_DSN = os.environ.get(
    "KETENBROKER_BENCH_POSTGRES_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("KETENBROKER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
CONNECT_TIMEOUT_SECONDS = 3
# Keys a bench leaves: a few per exchange (replay, rate limits). 1 000
# rounds of 1 000 keys is far above one run and still ends.
MAX_SCAN_ROUNDS = 1_000
SCAN_BATCH = 1_000


SCRATCH_PARENT = PROJECT_ROOT / "var"


class BackendUnavailableError(Exception):
    """PostgreSQL or Redis did not answer; the parts that need it report 'not available'."""


@contextlib.contextmanager
def scratch_folder(prefix: str = "bench-") -> Iterator[Path]:
    SCRATCH_PARENT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=SCRATCH_PARENT) as folder:
        yield Path(folder)


@contextlib.contextmanager
def scratch_database(admin_dsn: str = POSTGRES_ADMIN_DSN) -> Iterator[str]:
    name = f"ketenbroker_bench_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(
            admin_dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
        ) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')  # a name we made, hex only
    except psycopg.Error as e:
        raise BackendUnavailableError(f"cannot create a scratch database: {e}") from e
    try:
        yield f"{admin_dsn.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(
            admin_dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
        ) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_client(url: str = REDIS_URL) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)


@contextlib.contextmanager
def scratch_namespace(url: str = REDIS_URL) -> Iterator[str]:
    namespace = f"kbbench:{secrets.token_hex(6)}"
    client = redis_client(url)
    try:
        client.ping()
    except redis.RedisError as e:
        client.close()
        raise BackendUnavailableError(f"cannot reach Redis: {e}") from e
    try:
        yield namespace
    finally:
        try:
            cursor = 0
            for _ in range(MAX_SCAN_ROUNDS):
                cursor, keys = client.scan(cursor=cursor, match=f"{namespace}:*", count=SCAN_BATCH)
                if keys:
                    client.delete(*keys)
                if cursor == 0:
                    break
        finally:
            client.close()
