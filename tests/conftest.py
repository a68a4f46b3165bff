"""Shared fixtures: the real PostgreSQL and Redis of this machine, and key folders.

PostgreSQL: every test session gets its own throw-away database (created on
the server at 127.0.0.1:5432 with trust auth, dropped at the end), so runs
never see each other's rows. Redis: every test gets its own key namespace,
removed afterwards. No fakes (DEVELOPERS.md, real parts).
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from broker.convenant import Convenant, load_convenant
from broker.keys import KeyStore
from broker.logging_setup import SILENCED, configure_logging
from broker.settings import PROJECT_ROOT, Settings

POSTGRES_ADMIN_DSN = os.environ.get(
    "KETENBROKER_TEST_POSTGRES_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("KETENBROKER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
EXAMPLE_CONVENANT = PROJECT_ROOT / "convenants" / "lekstroom.yaml"


@pytest.fixture(scope="session")
def convenant() -> Convenant:
    return load_convenant(EXAMPLE_CONVENANT)


@pytest.fixture(scope="session")
def keystore(tmp_path_factory: pytest.TempPathFactory, convenant: Convenant) -> KeyStore:
    """A fresh key folder with keys for the broker and every principal."""
    store = KeyStore(tmp_path_factory.mktemp("keys"))
    store.init(["broker", *convenant.principal_ids()])
    return store


def database_dsn(name: str) -> str:
    """The DSN of database `name` on the test server."""
    return f"{POSTGRES_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"


@contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """A new database `<prefix>_<random hex>` on the real PostgreSQL; yields its
    DSN and drops it afterwards, cutting any connection still open."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_dsn(name)
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_server_dsn() -> Iterator[str]:
    """A database of its own for this test session on the real PostgreSQL."""
    with throwaway_database("ketenbroker_test") as dsn:
        yield dsn


def _empty_public_schema(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture
def postgres_dsn(postgres_server_dsn: str) -> Iterator[str]:
    """The session database, empty when the test starts and emptied again after it.

    Empty at the start too: module-scoped stacks (tests/e2e, tests/ops,
    tests/security) write to the session database and leave their rows, so
    a test run after them, in whatever order, would otherwise see them.
    """
    _empty_public_schema(postgres_server_dsn)
    yield postgres_server_dsn
    _empty_public_schema(postgres_server_dsn)


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    yield client
    client.close()


@pytest.fixture
def redis_namespace(redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix used by one test only; its keys are deleted afterwards."""
    namespace = f"kbtest:{secrets.token_hex(6)}"
    yield namespace
    for key in redis_client.scan_iter(match=f"{namespace}:*"):
        redis_client.delete(key)


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "ketenbroker.sqlite3"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The broker's production log set-up (JSON lines, INFO), writing into a buffer.

    Undone afterwards, including the levels it gives the loggers it
    silences (uvicorn's access log, httpx): later tests capture those.
    """
    stream = io.StringIO()
    root = logging.getLogger()
    previous = root.level
    silenced = {name: logging.getLogger(name).level for name in SILENCED}
    handler = configure_logging(Settings(log_format="json"), level="INFO", stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(previous)
        for name, level in silenced.items():
            logging.getLogger(name).setLevel(level)


def json_records(stream: io.StringIO) -> list[dict[str, Any]]:
    """The records `json_log` has written so far."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]
