"""Runs the retention job periodically inside `ketenbroker serve`.

What it does: a daemon thread calls `run` at once and then every
`interval_seconds`, until `stop()`. It waits on an Event, so `stop()` ends
the wait at once and joins the thread. A failing run is logged with its
traceback and the loop goes on: one unreachable database must not end
retention for the life of the process.

What it does not: decide anything (the job does), or coordinate several
processes (the job itself is safe to run concurrently on one database).

Why hourly by default: the shortest term is whole days (5 working days,
seed 002 §3.4.2), so an hour's lag is nothing, and a restarted broker
catches up within the hour.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from broker.audit.log import AuditLog
from broker.cases.register import CaseRegister
from broker.clock import Clock
from broker.convenant import Convenant
from broker.retention.job import run_retention

DEFAULT_INTERVAL_SECONDS = 3600.0
MIN_INTERVAL_SECONDS = 0.01  # a loop without a wait would spin on a failing database
STOP_TIMEOUT_SECONDS = 30.0  # a run in progress may need this long to finish its case

log = logging.getLogger("ketenbroker.retention")


class RetentionScheduler:
    def __init__(
        self,
        *,
        run: Callable[[], object],
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
        name: str = "ketenbroker-retention",
    ) -> None:
        if not interval_seconds >= MIN_INTERVAL_SECONDS:
            raise ValueError(
                f"expected an interval of at least {MIN_INTERVAL_SECONDS}s,"
                f" got {interval_seconds!r}"
            )
        self._run = run
        self._interval = interval_seconds
        self._name = name
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0  # completed calls of `run`, failed or not
        self.failures = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the retention scheduler was started already")
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Ask the loop to end and wait for it; a run in progress finishes first."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("retention run still busy after %.0fs; left to finish", timeout)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                result = self._run()
            except Exception:  # logged, never fatal: the next interval tries again
                self.failures += 1
                log.exception("retention run failed")
            else:
                log.info("retention run: %s", result)
            self.runs += 1
            if self._stopping.wait(self._interval):
                return


def scheduler_for(
    *,
    cases: CaseRegister,
    audit: AuditLog,
    convenant: Convenant,
    clock: Clock,
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
) -> RetentionScheduler:
    """The scheduler `serve` starts: the retention job with the clock's `now` on each run."""

    def run() -> object:
        return run_retention(cases=cases, audit=audit, convenant=convenant, now=clock.now())

    return RetentionScheduler(run=run, interval_seconds=interval_seconds)
