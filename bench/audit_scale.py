"""Benchmark: the audit log at scale, on SQLite and PostgreSQL (not part of `make test`).

Issue 4, point 7: the DPO's queries stay fast on a log of millions of
entries. For each backend this grows one generated log (`bench/loggen.py`)
through the requested sizes and measures at each size:

(a) append throughput while populating: generation plus append, and append
    alone (the generator's share timed separately);
(b) the DPO's queries, median and p99 over up to ROUNDS runs each, against a
    baseline measured in the same run (`get(0)`, one primary-key lookup):
    entries by case, by partner, by decision, by a month's time window, a
    page deep in the log by cursor, a subject lookup (by case, then filter),
    size, checkpoint, and inclusion and consistency proofs at random indexes;
    plus the time a restarted broker needs to catch its tree up ("open");
(c) full verification in entries/s, each printing progress every
    PROGRESS_EVERY entries: `AuditLog.verify()`; writing the export (the JSON
    lines GET /v1/audit/export streams); checking that export offline with
    the shipped verifier (`broker.audit.offline.verify_export`, behind
    `ketenbroker audit verify`); and, for comparison, a lean check that
    hashes each line's bytes instead of re-canonicalising the entry.

What it does not: extrapolate. Every loop is bounded in count (ROUNDS) and
time (QUERY_SECONDS per query, `--budget` for the whole run). Sizes run
smallest first on every backend; before a size starts, its cost is
predicted from the rates the last size measured, and a size predicted to
overrun, or that does overrun, is reported "skipped: over budget" with its
prediction, never with a made-up figure.

Why this shape: the same as bench/policy_decision.py, ratios against a
baseline from the same run on the same machine, because absolute figures
from a 2-core box mean little on their own. PostgreSQL runs in a throw-away
database (as tests/conftest.py does), dropped at the end, with an ANALYZE
after each bulk load as autovacuum would run one; SQLite runs in a
temporary file that is removed. Prints a table per backend and writes JSON
to bench/results/audit-scale-<stamp>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, cast

import psycopg

from bench.loggen import default_cases, generate_entries, load_example_convenant, populate
from broker.audit import (
    AuditLog,
    AuditQuery,
    AuditStore,
    Checkpoint,
    MerkleAccumulator,
    PostgresAuditStore,
    SqliteAuditStore,
    StoredEntry,
    offline,
    verify_checkpoint,
)
from broker.audit.merkle import LEAF_PREFIX
from broker.audit.row_sources import RowSource
from broker.audit.store import MAX_QUERY_LIMIT, RawRow, RowReader
from broker.canonical import canonical_json
from broker.clock import SystemClock, rfc3339
from broker.keys import PublicKeySet, SigningKey, TrustedKey, generate_signing_key
from broker.settings import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "results"
POSTGRES_ADMIN_DSN = os.environ.get(
    "KETENBROKER_BENCH_POSTGRES_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)

DEFAULT_SIZES = (100_000, 1_000_000)
DEFAULT_BACKENDS = ("sqlite", "postgres")
DEFAULT_BUDGET_SECONDS = 600.0  # the whole run, every backend and size
START = datetime(2026, 1, 5, tzinfo=UTC)  # the convenant's first Monday
# The log grows at a fixed rate, so a month or a case holds as many entries
# at every size and what grows with size is only the log: 10^6 entries are
# five years (the "millions of entries, multi-year"); 10^7 are fifty
# years of one region, or five of ten regions on one broker.
ENTRIES_PER_YEAR = 200_000
SEED = 20260105

ROUNDS = 50  # runs per query
MIN_ROUNDS = 5  # even a slow query gets this many, or is skipped over budget
WARMUP = 1  # one untimed run first (plans, caches)
QUERY_SECONDS = 10.0  # stop adding rounds to one query after this long
PAGE = 100  # the API's default page (broker/api/routes/audit.py)
EXPORT_PAGE = 1000  # the export endpoint's page (broker/api/routes/audit.py)
BATCH = 10_000  # entries per append transaction while populating
PROGRESS_EVERY = 100_000
SAMPLED_ENTRIES = 200  # random entries whose case, subject and month the queries ask for
SAFETY = 1.25  # margin on a predicted cost before it is held against the budget
OVER_BUDGET = "skipped: over budget"
PROOFS = ("inclusion_proof", "consistency_proof")

# Seconds per entry assumed before a backend has measured anything; on the
# slow side of what this 2-core machine does, so a first size is not started
# when it cannot finish.
_FIRST_GUESS = {
    "populate": 200e-6,
    "open": 5e-6,
    "verify": 100e-6,
    "export": 100e-6,
    "export_verify": 100e-6,
    "bytes_verify": 20e-6,
    "proof": 5e-6,
    # Seconds for all queries but the proofs, which grow little with size.
    "other_queries_seconds": 10.0,
}


class OverBudgetError(Exception):
    """The time budget ran out; what was being measured has no figure."""


class ExportMismatchError(Exception):
    """The exported lines do not give the root the closing checkpoint signs."""


@dataclass
class Budget:
    """A deadline on the monotonic clock."""

    deadline: float

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def check(self) -> None:
        if self.left() <= 0:
            raise OverBudgetError("time budget exhausted")


@dataclass
class Progress:
    """Prints a line each time a count passes another PROGRESS_EVERY."""

    label: str
    total: int
    base: int = 0  # the count when this started: a growing log starts where it stood
    started: float = field(default_factory=time.perf_counter)
    _next: int = field(init=False)

    def __post_init__(self) -> None:
        self._next = (self.base // PROGRESS_EVERY + 1) * PROGRESS_EVERY

    def update(self, done: int) -> None:
        if done < self._next:
            return
        while self._next <= done:
            self._next += PROGRESS_EVERY
        elapsed = time.perf_counter() - self.started
        rate = (done - self.base) / elapsed if elapsed > 0 else 0.0
        print(
            f"    {self.label}: {done:>11,} / {self.total:,} entries  ({rate:,.0f}/s)", flush=True
        )


class WatchedStore:
    """An `AuditStore` that reports a reader's progress and enforces the budget.

    `AuditLog.verify` reads the whole store page by page and has no progress
    hook; watching its reads from below (`query`, or `read_rows` on the fast
    path it takes with a `RowReader`) gives one without changing the log.
    Raising OverBudgetError (not an AuditReadError) stops `verify` at once
    instead of being reported as a damaged store.
    """

    def __init__(self, inner: AuditStore) -> None:
        self._inner = inner
        self._progress: Progress | None = None
        self._budget: Budget | None = None

    @contextlib.contextmanager
    def watching(self, progress: Progress, budget: Budget) -> Iterator[None]:
        self._progress, self._budget = progress, budget
        try:
            yield
        finally:
            self._progress = self._budget = None

    def append(self, entries: Sequence[dict[str, Any]]) -> list[StoredEntry]:
        return self._inner.append(entries)

    def size(self) -> int:
        return self._inner.size()

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        return self._inner.leaf_hashes(start, end)

    def get(self, index: int) -> StoredEntry | None:
        return self._inner.get(index)

    def query(self, q: AuditQuery) -> list[StoredEntry]:
        page = self._inner.query(q)
        if self._budget is not None:
            self._budget.check()
        if self._progress is not None and page:
            self._progress.update(page[-1].index + 1)
        return page

    def read_rows(self, after_index: int, limit: int) -> list[RawRow]:
        # AuditLog.verify's fast path (RowReader): forwarded, so the figure is
        # the one the broker gets from the real store, with progress as above.
        rows = cast(RowReader, self._inner).read_rows(after_index, limit)
        if self._budget is not None:
            self._budget.check()
        if self._progress is not None and rows:
            self._progress.update(rows[-1][0] + 1)
        return rows

    def row_source(self) -> RowSource:
        return cast(RowReader, self._inner).row_source()

    def ping(self) -> None:
        self._inner.ping()

    def close(self) -> None:
        self._inner.close()


# --- timing -------------------------------------------------------------------------


def _timings(call: Callable[[], object], budget: Budget) -> list[float]:
    """Milliseconds per run: WARMUP untimed, then up to ROUNDS within QUERY_SECONDS."""
    for _ in range(WARMUP):
        call()
        budget.check()
    samples: list[float] = []
    began = time.perf_counter()
    while len(samples) < ROUNDS and (
        len(samples) < MIN_ROUNDS or time.perf_counter() - began < QUERY_SECONDS
    ):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1e6)
        budget.check()
    return samples


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    # Nearest-rank percentile: with 50 samples p99 is the slowest run.
    rank = max(1, math.ceil(0.99 * len(ordered)))
    return {
        "median_ms": statistics.median(ordered),
        "p99_ms": ordered[rank - 1],
        "rounds": len(ordered),
    }


class _TimedIterator:
    """Passes items through and adds up the time spent producing them."""

    def __init__(self, inner: Iterator[dict[str, Any]]) -> None:
        self._inner = inner
        self.seconds = 0.0

    def __iter__(self) -> _TimedIterator:
        return self

    def __next__(self) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            return next(self._inner)
        finally:
            self.seconds += time.perf_counter() - start


# --- the DPO's queries ----------------------------------------------------------------


@dataclass(frozen=True)
class _Samples:
    """Query parameters drawn from the log before any timing."""

    cases: list[str]
    subjects: list[tuple[str, str]]  # (case, subject pseudonym)
    months: list[tuple[str, str]]  # [from, to) as stored times
    partners: list[str]


def _month(stamp: str) -> tuple[str, str]:
    moment = datetime.fromisoformat(stamp)
    first = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    after = (
        first.replace(year=first.year + 1, month=1)
        if first.month == 12
        else first.replace(month=first.month + 1)
    )
    return rfc3339(first), rfc3339(after)


def _draw_samples(
    store: AuditStore, size: int, rng: random.Random, partners: list[str]
) -> _Samples:
    cases: list[str] = []
    subjects: list[tuple[str, str]] = []
    months: list[tuple[str, str]] = []
    for _ in range(SAMPLED_ENTRIES):
        stored = store.get(rng.randrange(size))
        if stored is None:
            continue
        entry = stored.entry
        months.append(_month(entry["time"]))
        if entry["kind"] == "exchange":
            cases.append(entry["case"])
            if entry["subject"] is not None:
                subjects.append((entry["case"], entry["subject"]))
    if not cases or not subjects:
        raise RuntimeError(f"expected exchanges among {SAMPLED_ENTRIES} sampled entries, got none")
    return _Samples(cases=cases, subjects=subjects, months=months, partners=partners)


def _subject_lookup(log: AuditLog, case: str, subject: str) -> list[StoredEntry]:
    """What a DPO does for an access request: every entry of the case, then the subject's."""
    found: list[StoredEntry] = []
    cursor: int | None = None
    while True:
        page = log.entries(AuditQuery(case=case, after_index=cursor, limit=MAX_QUERY_LIMIT))
        found += [s for s in page if s.entry.get("subject") == subject]
        if len(page) < MAX_QUERY_LIMIT:
            return found
        cursor = page[-1].index


def _queries(
    log: AuditLog, store: AuditStore, size: int, samples: _Samples, rng: random.Random
) -> dict[str, Callable[[], object]]:
    """Each DPO query as a call that draws fresh parameters every run."""
    decisions = ("permit", "partial", "deny")

    def deep_cursor() -> int:
        return rng.randrange(size // 2, max(size - PAGE, size // 2 + 1))

    def month_page() -> list[StoredEntry]:
        time_from, time_to = rng.choice(samples.months)
        return log.entries(AuditQuery(time_from=time_from, time_to=time_to, limit=PAGE))

    def partner_month_page() -> list[StoredEntry]:
        # What a partner with audit:own sees for a month: the API pins partner.
        time_from, time_to = rng.choice(samples.months)
        partner = rng.choice(samples.partners)
        return log.entries(
            AuditQuery(partner=partner, time_from=time_from, time_to=time_to, limit=PAGE)
        )

    return {
        "baseline_get_0": lambda: store.get(0),
        "by_case": lambda: log.entries(AuditQuery(case=rng.choice(samples.cases), limit=PAGE)),
        "by_partner": lambda: log.entries(
            AuditQuery(
                partner=rng.choice(samples.partners), after_index=rng.randrange(size), limit=PAGE
            )
        ),
        "by_decision": lambda: log.entries(
            AuditQuery(decision=rng.choice(decisions), after_index=rng.randrange(size), limit=PAGE)
        ),
        "by_time_window_month": month_page,
        "by_partner_and_month": partner_month_page,
        "deep_cursor_page": lambda: log.entries(AuditQuery(after_index=deep_cursor(), limit=PAGE)),
        "subject_lookup": lambda: _subject_lookup(log, *rng.choice(samples.subjects)),
        "size": store.size,
        "checkpoint": log.checkpoint,
        "inclusion_proof": lambda: log.inclusion_proof(rng.randrange(size), size),
        "consistency_proof": lambda: log.consistency_proof(rng.randrange(1, size), size),
    }


# --- verification ---------------------------------------------------------------------


def _verify(log: AuditLog, store: WatchedStore, size: int, budget: Budget) -> dict[str, Any]:
    progress = Progress("verify", size)
    with store.watching(progress, budget):
        report = log.verify()
    seconds = time.perf_counter() - progress.started
    if not report.ok:
        raise RuntimeError(f"expected the generated log to verify, got {report.problems[:3]}")
    return {"seconds": seconds, "entries_per_s": report.size / seconds, "size": report.size}


def _export(log: AuditLog, path: Path, budget: Budget) -> dict[str, Any]:
    """Write what GET /v1/audit/export streams: the entries' JSON lines, then the checkpoint."""
    final = log.checkpoint()
    progress = Progress("export", final.size)
    cursor = -1
    with path.open("wb") as out:
        while cursor + 1 < final.size:
            page = log.entries(
                AuditQuery(after_index=cursor, before_index=final.size, limit=EXPORT_PAGE)
            )
            if not page:
                break
            for stored in page:
                out.write(canonical_json(stored.entry) + b"\n")
                cursor = stored.index
            progress.update(cursor + 1)
            budget.check()
        out.write(json.dumps({"checkpoint": final.to_dict()}).encode() + b"\n")
    seconds = time.perf_counter() - progress.started
    return {"seconds": seconds, "entries_per_s": final.size / seconds, "bytes": path.stat().st_size}


def _verify_export(path: Path, *, size: int, keys: PublicKeySet, budget: Budget) -> dict[str, Any]:
    """The shipped offline verifier (`ketenbroker audit verify`) on the export, with progress."""
    with path.open("rb") as stream:
        progress = Progress("export verify", size)

        def report(done: int) -> None:
            progress.update(done)
            budget.check()

        verified = offline.verify_export(
            offline.bounded_lines(stream), keys=keys, progress=report, progress_every=PROGRESS_EVERY
        )
    seconds = time.perf_counter() - progress.started
    return {"seconds": seconds, "entries_per_s": verified.size / seconds}


def _verify_export_bytes(
    path: Path, *, size: int, keys: PublicKeySet, budget: Budget
) -> dict[str, Any]:
    """A lean check of the same export: each leaf hashed from the line's bytes as they stand.

    Sound because the tree commits to bytes: if the root they give is the one
    the checkpoint signs, these are exactly the bytes that were logged, and
    re-canonicalising them (what `offline.verify_export` does) proves nothing
    more. Measured to show what the RFC 8785 step costs a verifier.
    """
    progress = Progress("export verify (line bytes)", size)
    tree = MerkleAccumulator()
    previous: bytes | None = None
    with path.open("rb") as lines:
        for line in lines:
            if previous is not None:
                body = previous.rstrip(b"\n")
                index = json.loads(body).get("index")
                if index != tree.size:
                    raise ExportMismatchError(f"expected index {tree.size}, got {index!r}")
                tree.append(hashlib.sha256(LEAF_PREFIX + body).digest())
                if tree.size % PROGRESS_EVERY == 0:
                    progress.update(tree.size)
                    budget.check()
            previous = line
    if previous is None:
        raise ExportMismatchError("expected a closing checkpoint line, got an empty export")
    checkpoint = Checkpoint.from_dict(json.loads(previous)["checkpoint"])
    verify_checkpoint(checkpoint, keys=keys)
    if checkpoint.size != tree.size or checkpoint.root_hash != tree.root().hex():
        raise ExportMismatchError(
            f"expected size {checkpoint.size} and root {checkpoint.root_hash},"
            f" the lines give {tree.size} and {tree.root().hex()}"
        )
    seconds = time.perf_counter() - progress.started
    return {"seconds": seconds, "entries_per_s": tree.size / seconds}


# --- one backend ----------------------------------------------------------------------


@contextlib.contextmanager
def _sqlite_store() -> Iterator[tuple[AuditStore, Callable[[], None]]]:
    with tempfile.TemporaryDirectory(prefix="ketenbroker-bench-") as folder:
        store = SqliteAuditStore(Path(folder) / "audit.sqlite3")
        try:
            yield store, lambda: None
        finally:
            store.close()


@contextlib.contextmanager
def _postgres_store() -> Iterator[tuple[AuditStore, Callable[[], None]]]:
    name = f"ketenbroker_bench_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{POSTGRES_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"

    def analyze() -> None:
        # What autovacuum does soon after a bulk load (PostgreSQL 13+ also
        # vacuums insert-only tables): statistics for the planner and a
        # visibility map for index-only scans. Without it the figures would
        # describe a state production never stays in.
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE) audit_entries")

    try:
        store = PostgresAuditStore(dsn)
        try:
            yield store, analyze
        finally:
            store.close()
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_BACKENDS = {"sqlite": _sqlite_store, "postgres": _postgres_store}


def _predict(rates: dict[str, float], current: int, size: int) -> float:
    """Seconds the next size is expected to take, from the last size's rates."""
    proof = rates["proof"] * size
    per_proof_query = (WARMUP + MIN_ROUNDS) * proof + max(0.0, QUERY_SECONDS - MIN_ROUNDS * proof)
    per_entry = sum(rates[k] for k in ("open", "verify", "export", "export_verify", "bytes_verify"))
    return SAFETY * (
        (size - current) * rates["populate"]
        + size * per_entry
        + 2 * min(per_proof_query, (WARMUP + ROUNDS) * proof)
        + rates["other_queries_seconds"]
    )


@dataclass
class _Lane:
    """One backend's log as it grows through the sizes, with what was measured on it."""

    name: str
    store: WatchedStore
    analyze: Callable[[], None]
    generated: _TimedIterator
    key: SigningKey
    rates: dict[str, float] = field(default_factory=lambda: dict(_FIRST_GUESS))
    by_size: dict[str, Any] = field(default_factory=dict)
    current: int = 0
    over: bool = False


def _measure_size(
    lane: _Lane, size: int, *, partners: list[str], budget: Budget, folder: Path
) -> None:
    """Everything at one size after populating, into `lane.by_size`; updates `lane.rates`.

    An overrun (OverBudgetError) leaves what was measured in the row and
    OVER_BUDGET for the rest.
    """
    row, rates, store, key = lane.by_size[str(size)], lane.rates, lane.store, lane.key
    for part in ("open_seconds", "queries", "verify", "export", "export_verify", "bytes_verify"):
        row[part] = OVER_BUDGET
    # A broker restarting on this log: the tree catches up from the leaf hashes.
    started = time.perf_counter()
    log = AuditLog(store=store, signing_key=key, clock=SystemClock())
    row["open_seconds"] = time.perf_counter() - started
    rates["open"] = row["open_seconds"] / size
    budget.check()

    # Query parameters only, reproducible per size; nothing secret.
    rng = random.Random(SEED + size)  # noqa: S311
    calls = _queries(log, store, size, _draw_samples(store, size, rng, partners), rng)
    queries: dict[str, Any] = dict.fromkeys(calls, OVER_BUDGET)
    row["queries"] = queries
    other_seconds = 0.0
    for name, call in calls.items():
        began = time.perf_counter()
        summary = _summary(_timings(call, budget))
        if name not in PROOFS:
            other_seconds += time.perf_counter() - began
        queries[name] = summary
        print(
            f"    {name}: median {summary['median_ms']:.3f} ms,"
            f" p99 {summary['p99_ms']:.3f} ms ({summary['rounds']} runs)",
            flush=True,
        )
    base = queries["baseline_get_0"]["median_ms"]
    for summary in queries.values():
        summary["x_baseline"] = summary["median_ms"] / base
    rates["other_queries_seconds"] = other_seconds
    slowest_proof = max(queries[p]["median_ms"] for p in PROOFS)
    rates["proof"] = slowest_proof / 1000 / size

    row["verify"] = _verify(log, store, size, budget)
    rates["verify"] = 1 / row["verify"]["entries_per_s"]
    path = folder / f"export-{lane.name}.jsonl"
    keys = PublicKeySet([TrustedKey(kid=key.kid, alg=key.alg, public_key=key.public_key)])
    try:
        row["export"] = _export(log, path, budget)
        rates["export"] = 1 / row["export"]["entries_per_s"]
        row["export_verify"] = _verify_export(path, size=size, keys=keys, budget=budget)
        rates["export_verify"] = 1 / row["export_verify"]["entries_per_s"]
        row["bytes_verify"] = _verify_export_bytes(path, size=size, keys=keys, budget=budget)
        rates["bytes_verify"] = 1 / row["bytes_verify"]["entries_per_s"]
    finally:
        path.unlink(missing_ok=True)


def _populate(lane: _Lane, size: int, budget: Budget) -> dict[str, Any]:
    """Grow the lane's log to `size` entries; the rates, with generation split out."""
    current = lane.current
    progress = Progress("append", size, base=current)

    def on_batch(done: int) -> None:
        progress.update(current + done)
        budget.check()

    lane.generated.seconds = 0.0
    started = time.perf_counter()
    added = populate(lane.store, islice(lane.generated, size - current), BATCH, on_batch=on_batch)
    seconds = time.perf_counter() - started
    lane.current += added
    if lane.current != size:
        raise RuntimeError(f"expected the generator to reach {size} entries, got {lane.current}")
    return {
        "entries": added,
        "seconds": seconds,
        "entries_per_s": added / seconds,
        "append_only_entries_per_s": added / max(seconds - lane.generated.seconds, 1e-9),
        "generation_entries_per_s": added / max(lane.generated.seconds, 1e-9),
    }


def _grow_and_measure(
    lane: _Lane, size: int, *, partners: list[str], budget: Budget, folder: Path
) -> None:
    """One size on one backend: predict, and if it fits, populate and measure."""
    predicted = _predict(lane.rates, lane.current, size)
    row: dict[str, Any] = {"predicted_seconds": round(predicted, 1)}
    lane.by_size[str(size)] = row
    if lane.over or predicted > budget.left():
        row["status"] = OVER_BUDGET
        row["budget_left_seconds"] = round(max(budget.left(), 0.0), 1)
        print(
            f"{lane.name} {size:,}: {OVER_BUDGET} (predicted {predicted:.0f} s,"
            f" {max(budget.left(), 0.0):.0f} s left)",
            flush=True,
        )
        # The log cannot grow past a size it skipped.
        lane.over = True
        return
    print(f"{lane.name} {size:,}: growing the log from {lane.current:,}", flush=True)
    started = time.perf_counter()
    row["status"] = "measured"
    try:
        row["populate"] = _populate(lane, size, budget)
        lane.rates["populate"] = row["populate"]["seconds"] / row["populate"]["entries"]
        began = time.perf_counter()
        lane.analyze()
        row["vacuum_analyze_seconds"] = time.perf_counter() - began
        _measure_size(lane, size, partners=partners, budget=budget, folder=folder)
    except OverBudgetError:
        row["status"] = f"{OVER_BUDGET} (ran out during this size)"
        lane.over = True
    row["seconds"] = time.perf_counter() - started


def run(
    backends: Sequence[str], sizes: Sequence[int], budget: Budget, *, per_year: int
) -> dict[str, Any]:
    """Grow one log per backend through `sizes`, smallest size on every backend first.

    Size-major order spends the budget where it tells most: every backend
    at the small sizes before any backend at the large ones.
    """
    convenant = load_example_convenant()
    partners = [p.id for p in convenant.partners]
    largest = max(sizes)
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ketenbroker-")))
        lanes = []
        for name in backends:
            inner, analyze = stack.enter_context(_BACKENDS[name]())
            entries = generate_entries(
                count=largest,
                start=START,
                years=largest / per_year,
                seed=SEED,
                partners=convenant,
                cases=default_cases(largest),
            )
            lanes.append(
                _Lane(
                    name=name,
                    store=WatchedStore(inner),
                    analyze=analyze,
                    generated=_TimedIterator(entries),
                    key=generate_signing_key(),
                )
            )
        for size in sizes:
            for lane in lanes:
                _grow_and_measure(lane, size, partners=partners, budget=budget, folder=folder)
    return {
        lane.name: {"sizes": lane.by_size, "seconds_per_entry_last": lane.rates} for lane in lanes
    }


# --- report ---------------------------------------------------------------------------


def _cell(value: Any, render: Callable[[Any], str]) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return OVER_BUDGET if value.startswith(OVER_BUDGET) else value
    return render(value)


def _took(value: tuple[float, float | None]) -> str:
    predicted, took = value
    return f"{predicted:,.0f} / {'-' if took is None else f'{took:,.0f}'}"


def _table(name: str, backend: dict[str, Any], sizes: Sequence[int]) -> str:
    rows = backend["sizes"]
    width = 32
    lines = [f"{name:<34}" + "".join(f"{size:>{width},}" for size in sizes)]

    def line(
        label: str, pick: Callable[[dict[str, Any]], Any], render: Callable[[Any], str]
    ) -> None:
        cells = []
        for size in sizes:
            row = rows.get(str(size), {})
            try:
                value = pick(row)
            except (KeyError, TypeError):
                value = row.get("status")
            cells.append(_cell(value, render))
        lines.append(f"{label:<34}" + "".join(f"{c:>{width}}" for c in cells))

    def rate(value: Any) -> str:
        return f"{value:,.0f}/s"

    line("status", lambda r: r["status"], str)
    line("predicted / took s", lambda r: (r["predicted_seconds"], r.get("seconds")), _took)
    line("populate (generate + append)", lambda r: r["populate"]["entries_per_s"], rate)
    line("  append alone", lambda r: r["populate"]["append_only_entries_per_s"], rate)
    line("  generation alone", lambda r: r["populate"]["generation_entries_per_s"], rate)
    line("open (tree catch-up)", lambda r: r["open_seconds"], lambda v: f"{v:.2f} s")
    lines.append("query: median / p99 ms (x baseline)")
    names = next(
        (list(r["queries"]) for r in rows.values() if isinstance(r.get("queries"), dict)), []
    )

    def timing(value: Any) -> str:
        ratio = value.get("x_baseline", 0.0)
        shown = f"{ratio:.1f}" if ratio < 10 else f"{ratio:,.0f}"
        return f"{value['median_ms']:.2f} / {value['p99_ms']:.2f} ({shown}x)"

    for query in names:

        def pick(row: dict[str, Any], query: str = query) -> Any:
            return row["queries"][query]

        line(f"  {query}", pick, timing)
    line("verify (AuditLog.verify)", lambda r: r["verify"]["entries_per_s"], rate)
    line("export (write JSON lines)", lambda r: r["export"]["entries_per_s"], rate)
    line("export verify (offline.py)", lambda r: r["export_verify"]["entries_per_s"], rate)
    line("export verify (line bytes)", lambda r: r["bytes_verify"]["entries_per_s"], rate)
    return "\n".join(lines)


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
    }
    with (
        contextlib.suppress(psycopg.Error),
        psycopg.connect(POSTGRES_ADMIN_DSN, connect_timeout=5) as conn,
    ):
        row = conn.execute("SHOW server_version").fetchone()
        info["postgres"] = row[0] if row else None
    return info


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.audit_scale", description=__doc__.split("\n")[0] if __doc__ else None
    )
    parser.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES))
    parser.add_argument("--backends", default=",".join(DEFAULT_BACKENDS))
    parser.add_argument(
        "--budget", type=float, default=DEFAULT_BUDGET_SECONDS, help="seconds, whole run"
    )
    parser.add_argument(
        "--per-year", type=int, default=ENTRIES_PER_YEAR, help="entries a year of the log holds"
    )
    args = parser.parse_args(argv)
    try:
        args.sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s})
    except ValueError:
        parser.error(f"expected --sizes as integers separated by commas, got {args.sizes!r}")
    if not args.sizes or args.sizes[0] < SAMPLED_ENTRIES:
        parser.error(f"expected sizes of at least {SAMPLED_ENTRIES}, got {args.sizes}")
    args.backends = [b for b in args.backends.split(",") if b]
    unknown = sorted(set(args.backends) - set(_BACKENDS))
    if unknown or not args.backends:
        parser.error(f"expected backends among {sorted(_BACKENDS)}, got {args.backends}")
    if args.per_year < 1:
        parser.error(f"expected a positive --per-year, got {args.per_year}")
    if args.budget <= 0:
        parser.error(f"expected a positive --budget, got {args.budget}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    total = Budget(time.monotonic() + args.budget)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    results: dict[str, Any] = {
        "benchmark": "audit_scale",
        "machine": _machine(),
        "config": {
            "sizes": args.sizes,
            "backends": args.backends,
            "budget_seconds": args.budget,
            "entries_per_year": args.per_year,
            "years": max(args.sizes) / args.per_year,
            "cases": default_cases(max(args.sizes)),
            "seed": SEED,
            "rounds": ROUNDS,
            "min_rounds": MIN_ROUNDS,
            "query_seconds": QUERY_SECONDS,
            "page": PAGE,
            "batch": BATCH,
        },
        "backends": {},
    }
    tables: list[str] = []
    try:
        results["backends"] = run(args.backends, args.sizes, total, per_year=args.per_year)
        tables = [_table(name, results["backends"][name], args.sizes) for name in args.backends]
    finally:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"audit-scale-{stamp}.json"
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwritten to {path.relative_to(PROJECT_ROOT)}", file=sys.stderr)
    print()
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
