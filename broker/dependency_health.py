"""Is each dependency answering? Asked in parallel, within a bound, never piling up.

What it does: `DependencyProbe.probe()` calls every dependency's `ping()`
(audit store, policy engine, replay cache, case store) at once in worker
threads, waits at most `timeout_seconds` for all of them, and reports each
as up (its ping returned) or down (it raised, or had not answered in time).
Every probe sets `ketenbroker_dependency_up{dependency=...}`. `/readyz`
and each `/metrics` scrape probe.

What it does not: retry, cache, or decide what "ready" means (the caller
does: all up). A ping still running when the bound passes is left to end
by its own timeout (Redis 1 s, PostgreSQL connect 5 s, OPA the policy
timeout); until it has, that dependency is not asked again and counts as
down, so a hanging backend holds at most one thread per dependency however
often Prometheus scrapes.

Why parallel and bounded: a scrape or readiness check that hangs on one
slow backend tells the operator nothing about the others and times out at
the scraper; four sequential pings could take the sum of their timeouts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait

from broker.metrics import Metrics

# The `dependency` label values of ketenbroker_dependency_up (docs/operations.md).
AUDIT = "audit"
POLICY = "policy"
CACHE = "cache"
CASE_STORE = "case_store"
DEPENDENCIES = (AUDIT, POLICY, CACHE, CASE_STORE)

Ping = Callable[[], None]


class DependencyProbe:
    """Pings dependencies in parallel within a bound (module docstring)."""

    def __init__(
        self, *, pings: Mapping[str, Ping], metrics: Metrics, timeout_seconds: float
    ) -> None:
        if not pings:
            # Fail closed on emptiness (style.md §13): no checks is not "all up".
            raise ValueError("expected at least one dependency to probe, got none")
        if timeout_seconds <= 0:
            raise ValueError(f"expected a positive timeout, got {timeout_seconds!r}")
        self._pings = dict(pings)
        self._metrics = metrics
        self._timeout = timeout_seconds
        self._lock = threading.Lock()
        self._in_flight: dict[str, Future[None]] = {}
        # One worker per dependency: a ping is never submitted while its last
        # one runs, so no task ever queues behind a hanging one.
        self._pool = ThreadPoolExecutor(
            max_workers=len(self._pings), thread_name_prefix="dependency-probe"
        )
        self._closed = False

    def probe(self) -> dict[str, bool]:
        """Each dependency's state: True when its ping returned within the bound."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the dependency probe is closed")
            for name, ping in self._pings.items():
                running = self._in_flight.get(name)
                if running is None or running.done():
                    self._in_flight[name] = self._pool.submit(ping)
            futures = dict(self._in_flight)
        wait(futures.values(), timeout=self._timeout)
        states: dict[str, bool] = {}
        for name, future in futures.items():
            states[name] = future.done() and not future.cancelled() and future.exception() is None
            self._metrics.set_dependency_up(name, states[name])
        return states

    def close(self) -> None:
        """Stop taking probes; pings still running end by their own timeouts."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
