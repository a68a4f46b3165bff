"""Which transactions of broker/sql.py are flushed to disk at commit, on SQLite and PostgreSQL.

Only the decision log may commit without a flush (docs/decisions.md,
"Decision log commits"). The setting is read back inside each transaction
from the database itself, so a flag that is ignored, or one that outlives
its transaction and leaves the case register's next commit unflushed,
fails here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.policy.decision_log import DecisionRecord, SqlDecisionLog
from broker.sql import Cursor, SqlConnection

# What each dialect reports for a flushed and for an unflushed commit:
# SQLite `PRAGMA synchronous` (2 FULL, 1 NORMAL), PostgreSQL `synchronous_commit`.
FLUSHED = {"sqlite": "2", "postgres": "on"}
UNFLUSHED = {"sqlite": "1", "postgres": "off"}


def _setting(cursor: Cursor, dialect: str) -> str:
    query = "PRAGMA synchronous" if dialect == "sqlite" else "SHOW synchronous_commit"
    cursor.execute(query)
    return str(cursor.fetchone()[0])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def connection(request: pytest.FixtureRequest, sqlite_path: Path) -> Iterator[SqlConnection]:
    if request.param == "sqlite":
        chosen = SqlConnection(dialect="sqlite", sqlite_path=sqlite_path)
    else:
        chosen = SqlConnection(dialect="postgres", dsn=request.getfixturevalue("postgres_dsn"))
    yield chosen
    chosen.close()


def test_transactions_are_flushed_unless_asked_otherwise(connection: SqlConnection) -> None:
    with connection.transaction() as cur:
        assert _setting(cur, connection.dialect) == FLUSHED[connection.dialect]


def test_unflushed_transaction_commits_without_flush(connection: SqlConnection) -> None:
    with connection.transaction(durable=False) as cur:
        assert _setting(cur, connection.dialect) == UNFLUSHED[connection.dialect]


@pytest.mark.parametrize(
    "fails",
    [
        False,  # committed: the next transaction must not inherit the setting
        True,  # rolled back by an error: nor after a failure
    ],
)
def test_unflushed_setting_ends_with_its_transaction(
    connection: SqlConnection, fails: bool
) -> None:
    expected = pytest.raises(RuntimeError) if fails else contextlib.nullcontext()
    with expected, connection.transaction(durable=False):
        if fails:
            raise RuntimeError("a failing decision-log write")
    with connection.transaction() as cur:
        assert _setting(cur, connection.dialect) == FLUSHED[connection.dialect]


def test_decision_log_row_is_kept_after_an_unflushed_commit(
    connection: SqlConnection,
) -> None:
    log = SqlDecisionLog(connection)
    record = DecisionRecord(
        exchange="ex_1",
        entrypoint="ketenbroker/exchange/decision",
        policy_version="v1",
        time="2026-11-21T10:00:00Z",
        case=None,
        input={"query": "politie.meldingen"},
        result={"allow": False},
    )
    log.record(record)
    assert log.for_exchange("ex_1") == [record]
    # The case register's next transaction on the same connection is flushed again.
    with connection.transaction() as cur:
        assert _setting(cur, connection.dialect) == FLUSHED[connection.dialect]
