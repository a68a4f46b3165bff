"""Audit append throughput, with and without group commit, on SQLite and PostgreSQL.

What it does: for each backend, group-commit setting and thread count
(1, 8, 32), N threads call `AuditLog.record(entry)` with realistic entries
(bench/loggen.py) until a count cap or a time cap, and the block reports
entries/s, commits/s (one `AuditStore.append` call is one transaction, one
fsync), entries per commit, and the p50/p99 a caller waited for its entry
to be durable. Commits are counted at the store boundary by
`CountingStore`, so the figure holds whatever batching the log does above.

What it does not: measure reads, or the exchange around an append
(bench/exchange.py). `record` returns only once the entry is durable
(with group commit too: the issue's "none answered before its entry is
durable"), so entries/s here are durable entries.

Why the guard: `AuditLog(group_commit=...)` arrives with issue 6's group
commit. Against an AuditLog without that parameter, the "off" rows are
the log as it is (one commit per record) and the "on" rows are "not
available", never a made-up figure.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from bench.loggen import generate_entries, load_example_convenant
from bench.schema import MEASURED, failed, not_available
from bench.scratch import BackendUnavailableError, scratch_database, scratch_folder
from bench.stats import summarize
from broker.audit import AuditLog, AuditQuery, AuditStore, PostgresAuditStore, SqliteAuditStore
from broker.audit.store import StoredEntry
from broker.clock import SystemClock
from broker.keys import SigningKey, generate_signing_key

THREADS = (1, 8, 32)
SECONDS = 3.0
MAX_ENTRIES = 20_000
POOL = 4_000  # distinct realistic entries, cycled
JOIN_GRACE_SECONDS = 30.0


def has_group_commit() -> bool:
    return "group_commit" in inspect.signature(AuditLog).parameters


class CountingStore:
    """An `AuditStore` that counts the transactions (append calls) passed through it."""

    def __init__(self, inner: AuditStore) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.commits = 0
        self.entries = 0

    def reset(self) -> None:
        with self._lock:
            self.commits = self.entries = 0

    def append(self, entries: Sequence[dict[str, Any]]) -> list[StoredEntry]:
        stored = self._inner.append(entries)
        with self._lock:
            self.commits += 1
            self.entries += len(entries)
        return stored

    def size(self) -> int:
        return self._inner.size()

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        return self._inner.leaf_hashes(start, end)

    def get(self, index: int) -> StoredEntry | None:
        return self._inner.get(index)

    def query(self, q: AuditQuery) -> list[StoredEntry]:
        return self._inner.query(q)

    def ping(self) -> None:
        self._inner.ping()

    def close(self) -> None:
        self._inner.close()


def entry_pool(count: int = POOL) -> list[dict[str, Any]]:
    return list(
        generate_entries(
            count=count,
            start=datetime(2026, 1, 5, tzinfo=UTC),
            years=1.0,
            seed=61,
            partners=load_example_convenant(),
            cases=100,
        )
    )


def _open_log(store: CountingStore, key: SigningKey, group_commit: bool) -> AuditLog:
    if has_group_commit():
        return AuditLog(
            store=store,
            signing_key=key,
            clock=SystemClock(),
            group_commit=group_commit,
        )
    return AuditLog(store=store, signing_key=key, clock=SystemClock())


def append_run(
    store: CountingStore,
    *,
    threads: int,
    group_commit: bool,
    pool: list[dict[str, Any]],
    key: SigningKey,
    seconds: float = SECONDS,
    max_entries: int = MAX_ENTRIES,
) -> dict[str, Any]:
    """`threads` writers recording until `max_entries` or `seconds`; figures per second."""
    log = _open_log(store, key, group_commit)
    entries = itertools.cycle(pool)
    tickets = itertools.count()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[str] = []
    deadline = [float("inf")]
    started: list[float] = []

    def go() -> None:
        now = time.perf_counter()
        started.append(now)
        deadline[0] = now + seconds
        store.reset()

    ready = threading.Barrier(threads, action=go)

    def writer(mine: list[float]) -> None:
        ready.wait()
        while next(tickets) < max_entries and time.perf_counter() < deadline[0]:
            start = time.perf_counter_ns()
            try:
                log.record(next(entries))
            except Exception as e:  # noqa: BLE001  # reported in the block, the run goes on
                errors.append(repr(e)[:300])
                return
            mine.append((time.perf_counter_ns() - start) / 1e6)

    workers = [threading.Thread(target=writer, args=(mine,), daemon=True) for mine in latencies]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join(seconds + JOIN_GRACE_SECONDS)
        wall = time.perf_counter() - started[0] if started else 0.0
    finally:
        close = getattr(log, "close", None)
        if callable(close):
            close()
    samples = [ms for mine in latencies for ms in mine]
    counts = {"threads": threads, "group_commit": group_commit, "wall_seconds": wall}
    if errors or not samples or wall <= 0:
        return failed(f"appends failed: {errors[:2] or 'none completed'}", **counts)
    return {
        **summarize(samples),
        **counts,
        "entries_per_s": len(samples) / wall,
        "commits_per_s": store.commits / wall,
        "entries_per_commit": store.entries / max(store.commits, 1),
    }


@contextlib.contextmanager
def open_store(backend: str) -> Iterator[AuditStore]:
    if backend == "sqlite":
        with scratch_folder("bench-append-") as folder:
            store = SqliteAuditStore(folder / "audit.sqlite3")
            try:
                yield store
            finally:
                store.close()
        return
    with scratch_database() as dsn:
        pg = PostgresAuditStore(dsn)
        try:
            yield pg
        finally:
            pg.close()


def run_backend(
    backend: str,
    *,
    threads: Sequence[int] = THREADS,
    seconds: float = SECONDS,
    max_entries: int = MAX_ENTRIES,
    pool: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    pool = pool if pool is not None else entry_pool()
    key = generate_signing_key()
    rows: list[dict[str, Any]] = []
    try:
        with open_store(backend) as inner:
            store = CountingStore(inner)
            for group_commit in (False, True):
                for n in threads:
                    if group_commit and not has_group_commit():
                        rows.append(
                            not_available(
                                "no group_commit in AuditLog",
                                threads=n,
                                group_commit=True,
                            )
                        )
                        continue
                    rows.append(
                        append_run(
                            store,
                            threads=n,
                            group_commit=group_commit,
                            pool=pool,
                            key=key,
                            seconds=seconds,
                            max_entries=max_entries,
                        )
                    )
    except BackendUnavailableError as e:
        return not_available(str(e))
    return {"status": MEASURED, "group_commit_parameter": has_group_commit(), "rows": rows}
