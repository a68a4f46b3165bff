"""Broker processes that start at the same moment on one PostgreSQL database.

Each starting process creates the tables it needs if they are missing
(audit log, case register, decision log). `CREATE TABLE IF NOT EXISTS` is
not atomic in PostgreSQL: two sessions can both find the table missing, and
the second then fails on the catalog's unique index, so a broker would not
start. Each session here stands for one process (its own connection),
released together by a barrier on a fresh database.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from broker.audit.postgres_store import PostgresAuditStore
from broker.cases.store import SqlCaseStore
from broker.policy.decision_log import SqlDecisionLog
from broker.sql import SqlConnection
from tests.conftest import throwaway_database

pytestmark = pytest.mark.postgres

STARTERS = 8
ROUNDS = 3  # fresh databases: the race is only there while the tables are missing
JOIN_TIMEOUT_SECONDS = 60.0


@pytest.fixture
def fresh_databases() -> Iterator[Callable[[], str]]:
    with ExitStack() as made:

        def make() -> str:
            return made.enter_context(throwaway_database("ketenbroker_start"))

        yield make


def _start_like_a_broker(dsn: str) -> None:
    audit = PostgresAuditStore(dsn)
    sql = SqlConnection(dialect="postgres", dsn=dsn)
    try:
        SqlCaseStore(sql, kek=secrets.token_bytes(32))
        SqlDecisionLog(sql)
    finally:
        sql.close()
        audit.close()


def test_brokers_starting_at_once_all_create_or_find_their_schema(
    fresh_databases: Callable[[], str],
) -> None:
    for _ in range(ROUNDS):
        dsn = fresh_databases()
        start = threading.Barrier(STARTERS)
        failures: list[BaseException] = []

        def starter(
            dsn: str = dsn,
            start: threading.Barrier = start,
            failures: list[BaseException] = failures,
        ) -> None:
            start.wait()
            try:
                _start_like_a_broker(dsn)
            except Exception as e:  # collected and asserted on below  # noqa: BLE001
                failures.append(e)

        threads = [threading.Thread(target=starter) for _ in range(STARTERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(JOIN_TIMEOUT_SECONDS)
        assert not [t for t in threads if t.is_alive()], "a starter hangs"
        assert failures == []
