"""What the DPO's pages show, gathered from the broker's services.

What it does: reads the audit log up to a fresh signed checkpoint, checks
that checkpoint's signature with the broker's pinned key and recomputes the
tree from the stored entries (`AuditLog.verify`), summarises the entries
(`aggregate.summarise`), asks the register for overdue deadlines and due
destructions, and answers the search by case id or subject pseudonym.

What it does not: render (`views.py`) or authenticate (`session.py`). It
shows no names or birth dates: subjects appear as their case ref, role and
keyed pseudonym, as the audit log and the case view show them (R10).

Cost: every overview reads the whole log twice (verify, then summarise),
O(size) in time and O(1) in memory, page by page. That is the point of the
page (a verified root, not a trusted one) and fine for a regional
convenant's log; a log of many millions of entries would want the summary
kept incrementally.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from broker.audit.checkpoint import Checkpoint, verify_checkpoint
from broker.audit.log import AuditLog
from broker.audit.store import MAX_QUERY_LIMIT, AuditQuery
from broker.calendar_nl import local_date
from broker.cases.crypto import pseudonym
from broker.cases.model import CaseStatus
from broker.deadlines import overdue_deadlines
from broker.dpo.aggregate import LogSummary, SummaryBuilder, Unit, about_subject
from broker.errors import TrustError
from broker.keys import PublicKeySet
from broker.retention.schedule import destructions_due

if TYPE_CHECKING:
    from broker.services import Services

CASE_ID = re.compile(r"case_[0-9a-f]{32}")
PSEUDONYM = re.compile(r"ps_[0-9a-f]{32}")
MAX_QUERY_CHARS = 200  # the search field; real ids are 37 characters
MAX_SEARCH_ROWS = 500  # entries shown for one search, newest first
UNIT_PERIODS: dict[Unit, int] = {"day": 14, "week": 12}  # two weeks by day, a quarter by week
DESTRUCTION_HORIZON_DAYS = 30  # issue 4: "the next destructions due"; a month ahead


@dataclass(frozen=True)
class Integrity:
    """The log's size and root, and whether both checks held."""

    size: int
    root_hash: str
    time: str
    key_id: str
    signature_ok: bool  # the checkpoint's signature holds under the broker's pinned key
    entries_ok: bool  # the stored entries recompute to the checkpoint's root
    problems: tuple[str, ...]

    @property
    def verified(self) -> bool:
        return self.signature_ok and self.entries_ok


@dataclass(frozen=True)
class OverdueRow:
    case: str
    kind: str
    due: str  # ISO 8601 as the deadline gives it: a datetime, or a date for working-day terms
    days_late: int  # whole Dutch calendar days since the due day


@dataclass(frozen=True)
class DestructionRow:
    case: str
    due: str  # ISO 8601 date
    reason: str  # broker.retention.schedule.DestructionReason
    overdue: bool  # the due day has passed and the data still exists


@dataclass(frozen=True)
class Overview:
    now: datetime
    convenant: str
    convenant_version: str
    integrity: Integrity
    summary: LogSummary
    overdue: tuple[OverdueRow, ...]  # earliest due first
    destructions: tuple[DestructionRow, ...]  # overdue or due within the horizon, earliest first


@dataclass(frozen=True)
class SubjectLink:
    """A subject of a case as the DPO may see it: ref, role and pseudonym, never a name."""

    case: str
    ref: str
    role: str
    pseudonym: str | None  # None once the case's data key is destroyed (R7)


@dataclass(frozen=True)
class CaseFacts:
    id: str
    reference: str
    kind: str
    status: str
    regisseur: str
    personal_data_destroyed: bool


@dataclass(frozen=True)
class SearchResult:
    query: str
    kind: Literal["case", "subject", "invalid", "empty"]
    cases: tuple[CaseFacts, ...]
    subjects: tuple[SubjectLink, ...]
    entries: tuple[Mapping[str, Any], ...]  # newest first, at most MAX_SEARCH_ROWS
    matched: int  # how many entries matched in all


def entries_up_to(
    audit: AuditLog, size: int, *, case: str | None = None
) -> Iterator[dict[str, Any]]:
    """The log's entries with index < `size`, in index order, read a page at a time."""
    cursor = -1
    while cursor + 1 < size:
        page = audit.entries(
            AuditQuery(case=case, after_index=cursor, before_index=size, limit=MAX_QUERY_LIMIT)
        )
        if not page:
            return
        for stored in page:
            yield stored.entry
            cursor = stored.index


def check_integrity(audit: AuditLog, *, keys: PublicKeySet) -> tuple[Checkpoint, Integrity]:
    """A fresh checkpoint, its signature checked and its root recomputed from the entries."""
    checkpoint = audit.checkpoint()
    problems: list[str] = []
    try:
        verify_checkpoint(checkpoint, keys=keys)
        signature_ok = True
    except TrustError as e:
        signature_ok = False
        problems.append(f"checkpoint signature: {e}")
    report = audit.verify(trusted=[checkpoint])
    problems.extend(report.problems)
    return checkpoint, Integrity(
        size=checkpoint.size,
        root_hash=checkpoint.root_hash,
        time=checkpoint.time,
        key_id=checkpoint.key_id,
        signature_ok=signature_ok,
        entries_ok=report.ok,
        problems=tuple(problems),
    )


def build_overview(services: Services, *, now: datetime, unit: Unit) -> Overview:
    checkpoint, integrity = check_integrity(
        services.audit, keys=services.keys.public_keyset("broker")
    )
    builder = SummaryBuilder(today=now.date(), unit=unit, periods=UNIT_PERIODS[unit])
    # Up to the checkpoint shown, so the figures and the size agree.
    for entry in entries_up_to(services.audit, checkpoint.size):
        builder.add(entry)
    overdue, destructions = _register_panels(services, now=now)
    return Overview(
        now=now,
        convenant=services.convenant.title,
        convenant_version=services.convenant.version,
        integrity=integrity,
        summary=builder.build(),
        overdue=overdue,
        destructions=destructions,
    )


def _register_panels(
    services: Services, *, now: datetime
) -> tuple[tuple[OverdueRow, ...], tuple[DestructionRow, ...]]:
    """Overdue deadlines (R6) and destructions due (R7), from the case register.

    The register lists cases from their public documents (no names, no
    addresses, no key unwrapped); deadlines and retention need only status
    history, events and consent.
    """
    cases = list(services.cases.cases_in_states(frozenset(CaseStatus)))
    today = local_date(now)
    overdue = tuple(
        OverdueRow(
            case=case_id,
            kind=deadline.kind.value,
            due=deadline.due,
            days_late=max(0, (today - _due_day(deadline.due)).days),
        )
        for case_id, deadline in overdue_deadlines(cases, services.convenant, now=now)
    )
    destructions = tuple(
        DestructionRow(
            case=due.case.id,
            due=due.due.isoformat(),
            reason=due.reason.value,
            overdue=due.due < today,
        )
        for due in destructions_due(
            cases, services.convenant, now=now, horizon_days=DESTRUCTION_HORIZON_DAYS
        )
    )
    return overdue, destructions


def _due_day(due: str) -> date:
    """The Dutch calendar day of a deadline's `due`: a date, or a datetime with a zone."""
    moment = datetime.fromisoformat(due)  # a bare date parses as its midnight, without a zone
    return local_date(moment) if moment.tzinfo is not None else moment.date()


def _subjects_of(services: Services, case_id: str) -> tuple[CaseFacts | None, list[SubjectLink]]:
    case = services.cases.load(case_id)
    if case is None:
        return None, []
    key = services.cases.data_key(case_id)
    facts = CaseFacts(
        id=case.id,
        reference=case.reference,
        kind=case.kind.value,
        status=case.status.value,
        regisseur=case.regisseur,
        personal_data_destroyed=case.personal_data_destroyed,
    )
    links = [
        SubjectLink(
            case=case.id,
            ref=subject.ref,
            role=subject.role.value,
            pseudonym=pseudonym(key, subject.ref) if key is not None else None,
        )
        for subject in case.subjects
    ]
    return facts, links


def search(services: Services, query: str) -> SearchResult:
    """Entries and subjects for a case id (`case_…`) or a subject pseudonym (`ps_…`)."""
    query = query.strip()[:MAX_QUERY_CHARS]
    if not query:
        return SearchResult(query, "empty", (), (), (), 0)
    size = services.audit.checkpoint().size
    if CASE_ID.fullmatch(query):
        facts, links = _subjects_of(services, query)
        newest, matched = _newest(entries_up_to(services.audit, size, case=query))
        return SearchResult(query, "case", (facts,) if facts else (), tuple(links), newest, matched)
    if PSEUDONYM.fullmatch(query):
        cases: dict[str, None] = {}

        def noting_cases(entries: Iterator[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
            for entry in entries:
                case = entry.get("case")
                if isinstance(case, str) and case:
                    cases.setdefault(case, None)
                yield entry

        newest, matched = _newest(
            noting_cases(about_subject(entries_up_to(services.audit, size), query))
        )
        found: list[CaseFacts] = []
        subjects: list[SubjectLink] = []
        for case_id in cases:
            facts, links = _subjects_of(services, case_id)
            if facts is not None:
                found.append(facts)
            # Only the subject behind this pseudonym, not the rest of the case.
            subjects.extend(link for link in links if link.pseudonym == query)
        return SearchResult(query, "subject", tuple(found), tuple(subjects), newest, matched)
    return SearchResult(query, "invalid", (), (), (), 0)


def _newest(
    entries: Iterator[Mapping[str, Any]],
) -> tuple[tuple[Mapping[str, Any], ...], int]:
    """The last MAX_SEARCH_ROWS of `entries`, newest first, and how many there were."""
    kept: deque[Mapping[str, Any]] = deque(maxlen=MAX_SEARCH_ROWS)
    matched = 0
    for entry in entries:
        matched += 1
        kept.append(entry)
    return tuple(reversed(kept)), matched
