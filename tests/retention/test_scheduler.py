"""The retention scheduler (broker/retention/scheduler.py): a real thread, a real Event."""

from __future__ import annotations

import logging
import threading

import pytest

from broker.retention.scheduler import RetentionScheduler

WAIT = 5.0  # generous: a loaded CI machine must not make these flaky


def test_scheduler_runs_at_once_and_again_each_interval() -> None:
    three = threading.Event()
    calls: list[int] = []

    def run() -> int:
        calls.append(len(calls))
        if len(calls) == 3:
            three.set()
        return len(calls)

    scheduler = RetentionScheduler(run=run, interval_seconds=0.01)
    scheduler.start()
    try:
        assert three.wait(WAIT)
    finally:
        scheduler.stop()
    assert not scheduler.running
    assert scheduler.runs >= 3


def test_a_failing_run_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    recovered = threading.Event()
    attempts: list[int] = []

    def run() -> None:
        attempts.append(1)
        if len(attempts) <= 2:
            raise RuntimeError("database unreachable")
        recovered.set()

    scheduler = RetentionScheduler(run=run, interval_seconds=0.01)
    with caplog.at_level(logging.ERROR, logger="ketenbroker.retention"):
        scheduler.start()
        try:
            assert recovered.wait(WAIT)
        finally:
            scheduler.stop()
    assert scheduler.failures == 2
    failures = [r for r in caplog.records if r.message == "retention run failed"]
    assert len(failures) == 2
    assert all(r.exc_info and "database unreachable" in str(r.exc_info[1]) for r in failures)


def test_stop_ends_the_wait_at_once_and_joins_the_thread() -> None:
    ran = threading.Event()
    scheduler = RetentionScheduler(run=ran.set, interval_seconds=3600)
    scheduler.start()
    assert ran.wait(WAIT)
    assert scheduler.running
    scheduler.stop(timeout=WAIT)  # an hour's wait must not hold it up
    assert not scheduler.running
    assert scheduler.runs == 1


def test_a_scheduler_starts_once() -> None:
    scheduler = RetentionScheduler(run=lambda: None, interval_seconds=3600)
    scheduler.start()
    try:
        with pytest.raises(RuntimeError, match="already"):
            scheduler.start()
    finally:
        scheduler.stop()


@pytest.mark.parametrize(
    "interval",
    [
        0.0,  # a loop without a wait spins on a failing database
        -1.0,  # negative
        float("nan"),  # compares false with everything
    ],
)
def test_an_interval_without_a_real_wait_is_refused(interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        RetentionScheduler(run=lambda: None, interval_seconds=interval)
