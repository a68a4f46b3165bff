"""Group commit: concurrent records share appends, and each caller still gets a true receipt.

The store under test is always a real one (SQLite file or PostgreSQL),
wrapped by `CountingStore`, which records the size of every `append` and can
hold the first one at a gate so the test knows exactly which entries queue
behind it. No timing is asserted: batches are made to form, then counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from broker.audit import (
    AuditLog,
    PostgresAuditStore,
    Receipt,
)
from broker.audit.group_commit import GroupCommit
from broker.errors import AuditWriteError
from broker.keys import SigningKey
from broker.metrics import Metrics
from tests.audit.conftest import POLL_SECONDS, Backend, CountingStore, FixedClock, make_entry
from tests.audit.test_log import assert_receipt_verifies


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + POLL_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"expected {what} within {POLL_SECONDS} s")
        time.sleep(0.001)


class Callers:
    """Threads that each record entries and keep their receipts or errors."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self.receipts: list[Receipt] = []
        self.errors: list[BaseException] = []
        self._guard = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, first: int, count: int, per_thread: int = 1) -> None:
        for n in range(first, first + count):
            thread = threading.Thread(target=self._work, args=(n, per_thread))
            thread.start()
            self._threads.append(thread)

    def _work(self, n: int, per_thread: int) -> None:
        for k in range(per_thread):
            try:
                receipt = self.log.record(make_entry(n * 1000 + k))
            except AuditWriteError as e:
                with self._guard:
                    self.errors.append(e)
            else:
                with self._guard:
                    self.receipts.append(receipt)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(POLL_SECONDS)
            assert not thread.is_alive()


def _gated_log(
    backend: Backend, key: SigningKey, clock: FixedClock, **kwargs: Any
) -> tuple[AuditLog, CountingStore]:
    store = CountingStore(backend.store(), gated=True)
    return AuditLog(store=store, signing_key=key, clock=clock, **kwargs), store


def _queue_behind_a_held_commit(
    log: AuditLog, store: CountingStore, callers: Callers, n: int
) -> None:
    """One caller's commit held at the gate, `n` more queued behind it."""
    callers.start(0, 1)
    assert store.at_gate.wait(POLL_SECONDS)
    callers.start(1, n)
    _wait_until(lambda: log.pending_entries == n, f"{n} entries queued")


def test_concurrent_records_share_one_commit_and_each_receipt_verifies(
    backend: Backend, broker_key: SigningKey, clock: FixedClock
) -> None:
    log, store = _gated_log(backend, broker_key, clock)
    callers = Callers(log)
    _queue_behind_a_held_commit(log, store, callers, 31)
    store.gate.set()
    callers.join()
    assert callers.errors == []
    # The committer's own entry, then everything that queued while it wrote.
    assert store.sizes == [1, 31]
    assert sorted(r.log_index for r in callers.receipts) == list(range(32))
    batch = [r for r in callers.receipts if r.log_index > 0]
    # One signed checkpoint serves the whole batch, and holds every entry of it.
    assert len({r.checkpoint for r in batch}) == 1
    assert batch[0].checkpoint.size == 32
    for receipt in callers.receipts:
        assert_receipt_verifies(log, receipt, broker_key)
    assert log.verify().ok


def test_batches_never_exceed_max_batch(
    backend: Backend, broker_key: SigningKey, clock: FixedClock
) -> None:
    log, store = _gated_log(backend, broker_key, clock, max_batch=4)
    callers = Callers(log)
    _queue_behind_a_held_commit(log, store, callers, 10)
    store.gate.set()
    callers.join()
    assert callers.errors == []
    assert store.sizes[0] == 1
    assert max(store.sizes) == 4
    assert sum(store.sizes) == 11
    assert sorted(r.log_index for r in callers.receipts) == list(range(11))
    for receipt in callers.receipts:
        assert_receipt_verifies(log, receipt, broker_key)


def test_many_threads_keep_indexes_gap_free_and_every_receipt_verifies(
    backend: Backend, broker_key: SigningKey, clock: FixedClock
) -> None:
    store = CountingStore(backend.store())
    log = AuditLog(store=store, signing_key=broker_key, clock=clock)
    callers = Callers(log)
    callers.start(0, 16, per_thread=8)
    callers.join()
    assert callers.errors == []
    assert sum(store.sizes) == 128
    assert sorted(r.log_index for r in callers.receipts) == list(range(128))
    for receipt in callers.receipts:
        assert_receipt_verifies(log, receipt, broker_key)
    report = log.verify(trusted=list({r.checkpoint for r in callers.receipts}))
    assert report.ok, report.problems


def test_failed_batch_fails_every_waiter_and_the_next_batch_works(
    backend: Backend, broker_key: SigningKey, clock: FixedClock
) -> None:
    log, store = _gated_log(backend, broker_key, clock)
    before = log.checkpoint()
    callers = Callers(log)
    _queue_behind_a_held_commit(log, store, callers, 7)
    backend.execute(backend.refuse_inserts)  # the disk fills while the commit is held
    store.gate.set()
    callers.join()
    # Fail closed: the held commit and the whole batch behind it, no receipt at all.
    assert store.sizes == [1, 7]
    assert callers.receipts == []
    assert len(callers.errors) == 8
    assert store.size() == 0
    assert log.checkpoint() == before
    # The next batch starts afresh once the disk recovers.
    backend.execute(backend.allow_inserts)
    again = Callers(log)
    again.start(100, 6)
    again.join()
    assert again.errors == []
    assert sorted(r.log_index for r in again.receipts) == list(range(6))
    for receipt in again.receipts:
        assert_receipt_verifies(log, receipt, broker_key)
    assert log.verify().ok


def test_without_group_commit_every_record_is_its_own_append(
    backend: Backend, broker_key: SigningKey, clock: FixedClock
) -> None:
    store = CountingStore(backend.store())
    log = AuditLog(store=store, signing_key=broker_key, clock=clock, group_commit=False)
    callers = Callers(log)
    callers.start(0, 8, per_thread=3)
    callers.join()
    assert callers.errors == []
    assert store.sizes == [1] * 24
    assert log.pending_entries == 0
    assert sorted(r.log_index for r in callers.receipts) == list(range(24))


def test_an_entry_that_cannot_be_logged_fails_alone_before_any_batch(
    backend: Backend, broker_key: SigningKey, clock: FixedClock
) -> None:
    store = CountingStore(backend.store())
    log = AuditLog(store=store, signing_key=broker_key, clock=clock)
    with pytest.raises(AuditWriteError, match="cannot be logged"):
        log.record({"kind": "exchange"})  # no time
    with pytest.raises(AuditWriteError, match="cannot be logged"):
        log.record({**make_entry(1), "n": 2**60})  # beyond what JCS represents
    assert store.sizes == []
    assert log.record(make_entry(2)).log_index == 0


def test_commits_and_appends_are_counted_in_the_metrics(
    backend: Backend, broker_key: SigningKey, clock: FixedClock
) -> None:
    metrics = Metrics()
    store = CountingStore(backend.store(), gated=True)
    log = AuditLog(store=store, signing_key=broker_key, clock=clock, metrics=metrics)
    callers = Callers(log)
    _queue_behind_a_held_commit(log, store, callers, 5)
    store.gate.set()
    callers.join()
    text = metrics.render().decode()
    assert "ketenbroker_audit_append_seconds_count 6.0" in text
    assert "ketenbroker_audit_commit_seconds_count 2.0" in text
    assert "ketenbroker_audit_batch_entries_sum 6.0" in text


@pytest.mark.postgres
def test_two_group_committing_logs_on_one_database_stay_one_sequence(
    postgres_dsn: str, broker_key: SigningKey, clock: FixedClock
) -> None:
    """Two broker processes' logs, each batching its own threads, share one gap-free tree."""
    stores = [PostgresAuditStore(postgres_dsn), PostgresAuditStore(postgres_dsn)]
    try:
        logs = [AuditLog(store=s, signing_key=broker_key, clock=clock) for s in stores]
        callers = [Callers(log) for log in logs]
        for offset, group in enumerate(callers):
            group.start(offset * 100, 8, per_thread=5)
        for group in callers:
            group.join()
        assert all(group.errors == [] for group in callers)
        indexes = sorted(r.log_index for group in callers for r in group.receipts)
        assert indexes == list(range(80))
        for log, group in zip(logs, callers, strict=True):
            for receipt in group.receipts:
                assert_receipt_verifies(log, receipt, broker_key)
        assert logs[0].checkpoint() == logs[1].checkpoint()
        assert logs[0].verify().ok
    finally:
        for store in stores:
            store.close()


def test_a_caller_that_waits_too_long_gives_up_and_its_item_is_never_committed() -> None:
    committed: list[list[int]] = []
    release = threading.Event()

    def commit(items: Sequence[int]) -> list[int]:
        committed.append(list(items))
        release.wait(POLL_SECONDS)
        return list(items)

    batcher: GroupCommit[int, int] = GroupCommit(commit, max_batch=8, wait_seconds=0.05)
    first = threading.Thread(target=batcher.submit, args=(1,))
    first.start()
    _wait_until(lambda: committed == [[1]], "the first commit to start")
    with pytest.raises(AuditWriteError, match="waited"):
        batcher.submit(2)
    assert batcher.pending == 0
    release.set()
    first.join(POLL_SECONDS)
    assert committed == [[1]]
    assert batcher.submit(3) == 3
    assert committed == [[1], [3]]
