"""Close the intents a dead broker left open, so the log says how every exchange ended.

What it does: `reconcile` reads the audit log from the last reconciliation
mark onwards, finds every exchange `intent` that no closing entry names in
its `intent_index`, and appends for each an entry with decision
`not_disclosed` (reason `broker_restarted_before_disclosure`). It closes an
intent only once it is older than `grace`; younger ones may belong to a
broker process that is still working on them. When it closed something, or
read a long stretch of log, it appends a `reconciliation` mark saying below
which index every intent is closed, so the next run starts there.

What it does not: decide whether anything was disclosed. It need not: the
pipeline answers a requester only after the closing entry is durable (log
before disclose), so an intent without one was never answered. Nor does it
repair a damaged log (`AuditLog.verify` finds that).

Why at start-up (`broker.services.build_services` calls it): a broker killed
between intent and disclosure cannot close its own intents, and the next
process to open the log is the one that can. Whether it may close *every*
open intent depends on who else writes:

* One process per log (the embedded SQLite deployment): the crashed process
  was the only writer of its intents, so all of them are dangling and the
  grace is zero. `claim_writer` proves "only one" rather than assuming it:
  every broker process on a SQLite log holds a shared `flock` on a file next
  to it, and a starting process that can take the lock exclusively knows no
  other process (a live broker, or `ketenbroker retention` run beside it)
  has the log open. The kernel drops a killed process's lock.
* Several processes sharing one database (PostgreSQL): a young intent may be
  a live peer's exchange in flight. Only intents older than
  `shared_grace(...)` are closed: the longest an exchange may take between
  intent and closing entry (`in_flight_limit`, which the pipeline enforces
  before it discloses), plus the longest an audit append waits for a lock,
  plus clock skew between hosts. An intent left open as too young is closed
  by the next start-up after it has aged.

Residual race, stated: two processes starting at the same moment may both
close the same old intent; the second `not_disclosed` entry is redundant,
never contradictory. A PostgreSQL append that waits on the append lock for
longer than `AUDIT_WRITE_MARGIN` could land a disclosure after a peer closed
its intent; the log then shows both, and verifiers see it.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from broker.adapter_protocol import CALL_TOKEN_LEEWAY_SECONDS
from broker.audit.entries import (
    CLOSING_DECISIONS,
    INTENT,
    RECONCILED,
    RECONCILIATION,
    not_disclosed_entry,
    reconciliation_mark,
)
from broker.audit.log import AuditLog
from broker.audit.sqlite_store import BUSY_TIMEOUT_SECONDS
from broker.audit.store import MAX_QUERY_LIMIT, AuditQuery, StoredEntry

log = logging.getLogger("ketenbroker.reconcile")

# A mark is written when this many entries were read without finding anything
# to close, so that start-up never reads more than about this much log (plus
# whatever a crash left open) however long the broker has run.
MARK_INTERVAL = 10_000
# Hosts of one deployment are NTP-synchronised; the broker already tolerates
# this much skew between itself and adapters (adapter_protocol).
MAX_CLOCK_SKEW = timedelta(seconds=CALL_TOKEN_LEEWAY_SECONDS)
# How long the final append of an exchange may wait for another writer's
# lock after the pipeline checked its deadline: SQLite's busy timeout. A
# PostgreSQL append waits on an advisory lock without a bound; see the
# module docstring.
AUDIT_WRITE_MARGIN = timedelta(seconds=BUSY_TIMEOUT_SECONDS)

RESTART_DETAIL = "the broker stopped after the intent was logged and before it answered"


def in_flight_limit(*, adapter_timeout_seconds: float, policy_timeout_seconds: float) -> timedelta:
    """How long an exchange may stay between its intent and its closing entry.

    After the intent the pipeline makes one adapter call and one policy
    evaluation. httpx applies the adapter timeout per phase (connect, each
    read), not to the whole call, so twice the timeout covers a slow but
    honest adapter; the pipeline refuses to disclose once this has passed
    (`ExchangePipeline`), so it is a bound, not an estimate.
    """
    return timedelta(seconds=2 * adapter_timeout_seconds + policy_timeout_seconds)


def shared_grace(limit: timedelta) -> timedelta:
    """How old an intent must be before a process that is not the sole writer closes it."""
    return limit + AUDIT_WRITE_MARGIN + MAX_CLOCK_SKEW


@dataclass(frozen=True)
class ReconcileReport:
    """What one reconciliation did."""

    closed: list[str]  # exchange ids closed as not disclosed, in log order
    left_open: list[str] = field(default_factory=list)  # younger than the grace
    scanned_from: int = 0
    scanned_to: int = 0  # exclusive
    marked: bool = False


def _intent_time(entry: dict[str, Any]) -> datetime | None:
    text = entry.get("time")
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _start_index(audit: AuditLog) -> int:
    """Where to start reading: the `open_from` of the newest well-formed mark, else 0."""
    start, cursor = 0, -1
    # Marks are rare (one per start-up that closed something, or per
    # MARK_INTERVAL entries), and the store indexes `decision`.
    while page := audit.entries(
        AuditQuery(decision=RECONCILED, after_index=cursor, limit=MAX_QUERY_LIMIT)
    ):
        for stored in page:
            cursor = stored.index
            open_from = stored.entry.get("open_from")
            if (
                stored.entry.get("kind") == RECONCILIATION
                and isinstance(open_from, int)
                and not isinstance(open_from, bool)
                and 0 <= open_from <= stored.index
            ):
                start = open_from
    return start


def _closes(closer: dict[str, Any], intents: dict[int, StoredEntry]) -> int | None:
    """The index of the open intent `closer` closes, if it closes one."""
    index = closer.get("intent_index")
    if (
        closer.get("kind") != "exchange"
        or closer.get("decision") not in CLOSING_DECISIONS
        or not isinstance(index, int)
        or isinstance(index, bool)
        or index not in intents
    ):
        return None
    # A closing entry must be about the same exchange as the intent it names.
    if intents[index].entry.get("exchange") != closer.get("exchange"):
        return None
    return index


def open_intents(audit: AuditLog, *, start: int) -> tuple[list[StoredEntry], int]:
    """The intents from index `start` on that nothing closes, and the end of what was read."""
    intents: dict[int, StoredEntry] = {}
    cursor, end = start - 1, start
    while page := audit.entries(AuditQuery(after_index=cursor, limit=MAX_QUERY_LIMIT)):
        for stored in page:
            cursor, end = stored.index, stored.index + 1
            entry = stored.entry
            if entry.get("kind") == "exchange" and entry.get("decision") == INTENT:
                intents[stored.index] = stored
                continue
            closed = _closes(entry, intents)
            if closed is not None:
                del intents[closed]
    return [intents[i] for i in sorted(intents)], end


def reconcile(audit: AuditLog, *, now: datetime, grace: timedelta) -> ReconcileReport:
    """Close every open intent older than `grace` as not disclosed; see the module docstring.

    Running it again closes nothing new: a closed intent has its closing
    entry, which the next run reads.
    """
    if grace < timedelta(0):
        raise ValueError(f"expected a grace period >= 0, got {grace}")
    start = _start_index(audit)
    dangling, end = open_intents(audit, start=start)
    closed: list[StoredEntry] = []
    left_open: list[StoredEntry] = []
    for stored in dangling:
        moment = _intent_time(stored.entry)
        # Only the broker writes intents, always with an RFC 3339 time; one
        # without is not a live peer's, so it is closed rather than kept.
        if moment is None or now - moment >= grace:
            audit.record(
                not_disclosed_entry(
                    stored.entry, intent_index=stored.index, time=now, detail=RESTART_DETAIL
                )
            )
            closed.append(stored)
        else:
            left_open.append(stored)
    open_from = left_open[0].index if left_open else end
    marked = bool(closed) or end - start >= MARK_INTERVAL
    if marked:
        audit.record(
            reconciliation_mark(
                time=now,
                scanned_from=start,
                scanned_to=end,
                open_from=open_from,
                closed=[s.index for s in closed],
                grace_seconds=math.ceil(grace.total_seconds()),
            )
        )
    report = ReconcileReport(
        closed=[str(s.entry.get("exchange")) for s in closed],
        left_open=[str(s.entry.get("exchange")) for s in left_open],
        scanned_from=start,
        scanned_to=end,
        marked=marked,
    )
    if closed:
        log.warning("closed %d intents left open by a stopped broker as not disclosed", len(closed))
    if left_open:
        log.info("left %d intents open: younger than %s", len(left_open), grace)
    return report


class WriterClaim:
    """This process's registration as a writer of one SQLite audit log (see the docstring).

    `sole` says whether, when the claim was made, no other process held one.
    The claim is a shared `flock` on `<log>.writers`, held until `close`.
    """

    def __init__(self, path: Path | None) -> None:
        self.sole = False
        self._fd: int | None = None
        if path is None:
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.sole = True
            except BlockingIOError:
                self.sole = False
            # Keep a shared claim for our lifetime: later starters see us.
            # (Turning an exclusive lock into a shared one is not atomic; a
            # starter slipping in between finds this process mid-start-up,
            # with no exchange in flight, so its zero grace harms nothing.)
            fcntl.flock(fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def claim_writer(*, sqlite_path: Path | None) -> WriterClaim:
    """Register as a writer of the SQLite log at `sqlite_path`; None (PostgreSQL): never sole."""
    if sqlite_path is None:
        return WriterClaim(None)
    sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return WriterClaim(sqlite_path.with_name(sqlite_path.name + ".writers"))
