"""Closing the intents a dead broker left open (broker/exchange/reconcile.py).

Runs on both audit stores (style.md §25). The invariants: a dangling intent
is closed once and only once; an intent that something already closed is
left alone; an intent young enough to be a live peer's is left open until
it is older than the grace period; the log verifies afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.audit.entries import RECONCILIATION, RESTARTED_BEFORE_DISCLOSURE
from broker.audit.log import AuditLog
from broker.audit.postgres_store import PostgresAuditStore
from broker.audit.sqlite_store import SqliteAuditStore
from broker.audit.store import AuditQuery, AuditStore, StoredEntry
from broker.exchange import reconcile as reconcile_module
from broker.exchange.reconcile import (
    AUDIT_WRITE_MARGIN,
    MAX_CLOCK_SKEW,
    claim_writer,
    in_flight_limit,
    reconcile,
    shared_grace,
)
from broker.keys import KeyStore
from tests.exchange.conftest import T0, MovableClock, closing_entry, intent_entry

GRACE = timedelta(seconds=27)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def audit(
    request: pytest.FixtureRequest, tmp_path: Path, keystore: KeyStore, clock: MovableClock
) -> Iterator[AuditLog]:
    store: AuditStore
    if request.param == "sqlite":
        store = SqliteAuditStore(tmp_path / "audit.sqlite3")
    else:
        store = PostgresAuditStore(request.getfixturevalue("postgres_dsn"))
    yield AuditLog(store=store, signing_key=keystore.signing_key("broker"), clock=clock)
    store.close()


def _all(audit: AuditLog) -> list[StoredEntry]:
    found: list[StoredEntry] = []
    cursor = -1
    while page := audit.entries(AuditQuery(after_index=cursor, limit=1000)):
        found.extend(page)
        cursor = page[-1].index
    return found


def _intent(audit: AuditLog, exchange: str, *, age: float) -> StoredEntry:
    receipt = audit.record(intent_entry(exchange, time=T0 - timedelta(seconds=age)))
    stored = audit.entries(AuditQuery(after_index=receipt.log_index - 1, limit=1))
    return stored[0]


def _closers_of(audit: AuditLog, intent: StoredEntry) -> list[dict[str, Any]]:
    return [s.entry for s in _all(audit) if s.entry.get("intent_index") == intent.index]


def test_dangling_intent_is_closed_once_and_only_once(audit: AuditLog) -> None:
    dangling = _intent(audit, "ex_dangling", age=60)
    first = reconcile(audit, now=T0, grace=timedelta(0))
    assert first.closed == ["ex_dangling"]
    [closing] = _closers_of(audit, dangling)
    assert closing["decision"] == "not_disclosed"
    assert closing["exchange"] == "ex_dangling"
    assert [r["code"] for r in closing["reasons"]] == [RESTARTED_BEFORE_DISCLOSURE]
    assert closing["fields_disclosed"] == [] and closing["payload_hash"] is None
    # The closing entry repeats who asked whom what, so it reads on its own.
    for member in ("requester", "provider", "case", "subject", "query", "purpose", "legal_basis"):
        assert closing[member] == dangling.entry[member], member
    # Again, and again after a restart of the log: nothing more is closed.
    assert reconcile(audit, now=T0, grace=timedelta(0)).closed == []
    assert reconcile(audit, now=T0 + timedelta(days=1), grace=timedelta(0)).closed == []
    assert len(_closers_of(audit, dangling)) == 1
    assert audit.verify().ok


@pytest.mark.parametrize("decision", ["permit", "partial", "deny", "not_disclosed"])
def test_closed_intent_is_left_alone(audit: AuditLog, decision: str) -> None:
    intent = _intent(audit, "ex_done", age=60)
    audit.record(closing_entry(intent, decision=decision, time=T0))
    assert reconcile(audit, now=T0, grace=timedelta(0)).closed == []
    assert len(_closers_of(audit, intent)) == 1


def test_closing_entry_of_another_exchange_does_not_close_an_intent(audit: AuditLog) -> None:
    """An entry that names the intent's index but another exchange is no closing entry."""
    intent = _intent(audit, "ex_real", age=60)
    audit.record(closing_entry(intent, decision="permit", time=T0, exchange="ex_other"))
    assert reconcile(audit, now=T0, grace=timedelta(0)).closed == ["ex_real"]


def test_live_peers_young_intent_is_left_open_until_the_grace_has_passed(
    audit: AuditLog,
) -> None:
    old = _intent(audit, "ex_old", age=GRACE.total_seconds() + 1)
    young = _intent(audit, "ex_young", age=1)
    report = reconcile(audit, now=T0, grace=GRACE)
    assert (report.closed, report.left_open) == (["ex_old"], ["ex_young"])
    assert len(_closers_of(audit, old)) == 1
    assert _closers_of(audit, young) == []
    # The peer finishes its exchange: nothing left to do.
    audit.record(closing_entry(young, decision="permit", time=T0 + timedelta(seconds=2)))
    later = reconcile(audit, now=T0 + GRACE * 2, grace=GRACE)
    assert (later.closed, later.left_open) == ([], [])
    assert audit.verify().ok


def test_young_intent_whose_broker_died_is_closed_once_it_has_aged(audit: AuditLog) -> None:
    young = _intent(audit, "ex_orphan", age=1)
    assert reconcile(audit, now=T0, grace=GRACE).left_open == ["ex_orphan"]
    report = reconcile(audit, now=T0 + GRACE, grace=GRACE)
    assert report.closed == ["ex_orphan"]
    assert len(_closers_of(audit, young)) == 1


def test_mark_lets_the_next_run_start_where_intents_may_still_be_open(audit: AuditLog) -> None:
    for n in range(3):
        _intent(audit, f"ex_closed_{n}", age=60)
    young = _intent(audit, "ex_young", age=1)
    report = reconcile(audit, now=T0, grace=GRACE)
    assert report.marked and report.scanned_from == 0
    [mark] = [s.entry for s in _all(audit) if s.entry["kind"] == RECONCILIATION]
    assert mark["open_from"] == young.index
    assert mark["closed"] == [0, 1, 2]
    # The next run reads from the young intent on, not from the start.
    again = reconcile(audit, now=T0, grace=GRACE)
    assert (again.scanned_from, again.left_open, again.marked) == (young.index, ["ex_young"], False)


def test_long_quiet_stretch_is_marked(audit: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconcile_module, "MARK_INTERVAL", 4)
    for n in range(4):
        intent = _intent(audit, f"ex_{n}", age=60)
        audit.record(closing_entry(intent, decision="permit", time=T0))
    report = reconcile(audit, now=T0, grace=timedelta(0))
    assert (report.closed, report.marked, report.scanned_to) == ([], True, 8)
    assert reconcile(audit, now=T0, grace=timedelta(0)).scanned_from == 8


def test_intent_with_unreadable_time_is_closed(audit: AuditLog) -> None:
    entry = intent_entry("ex_odd", time=T0)
    entry["time"] = "yesterday"
    audit.record(entry)
    assert reconcile(audit, now=T0, grace=GRACE).closed == ["ex_odd"]


def test_negative_grace_is_refused(audit: AuditLog) -> None:
    with pytest.raises(ValueError, match="grace"):
        reconcile(audit, now=T0, grace=timedelta(seconds=-1))


def test_grace_covers_an_exchange_its_write_and_clock_skew() -> None:
    limit = in_flight_limit(adapter_timeout_seconds=5.0, policy_timeout_seconds=2.0)
    assert limit == timedelta(seconds=12)
    assert shared_grace(limit) == limit + AUDIT_WRITE_MARGIN + MAX_CLOCK_SKEW


# --- who is the sole writer -------------------------------------------------------------


def test_sole_writer_is_proved_by_the_lock_not_assumed(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    first = claim_writer(sqlite_path=path)
    assert first.sole
    # A second process (or a command run beside the broker) is not alone.
    second = claim_writer(sqlite_path=path)
    assert not second.sole
    first.close()
    second.close()
    # Once every holder is gone (closed or killed), the next one is alone again.
    third = claim_writer(sqlite_path=path)
    assert third.sole
    third.close()


def test_postgres_writer_is_never_sole() -> None:
    claim = claim_writer(sqlite_path=None)
    assert not claim.sole
    claim.close()
