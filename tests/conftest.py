"""Shared fixtures: the real PostgreSQL and Redis of this machine, and key folders.

PostgreSQL: every test session gets its own throw-away database (created on
the server at 127.0.0.1:5432 with trust auth, dropped at the end), so runs
never see each other's rows. Redis: every test gets its own key namespace,
removed afterwards. No fakes (DEVELOPERS.md, real parts).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from broker.convenant import Convenant, load_convenant
from broker.keys import KeyStore
from broker.settings import PROJECT_ROOT

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


@pytest.fixture(scope="session")
def postgres_server_dsn() -> Iterator[str]:
    """A database of its own for this test session on the real PostgreSQL."""
    name = f"ketenbroker_test_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_dsn(postgres_server_dsn: str) -> Iterator[str]:
    """The session database, emptied of every table after each test."""
    yield postgres_server_dsn
    with psycopg.connect(postgres_server_dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


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
