"""The R6 terms of a case: when each is due, whether it was met, whether it is overdue.

What it does: derives a case's deadlines from what the register knows (its
creation, status history, the owner's consent, and the events partners
report through `POST /v1/cases/{id}/events`), for the status view (U2) and
for the DPO (`overdue_deadlines`, U3). Pure functions; `now` is a parameter.

What it does not: store, remind or escalate. A deadline is recomputed from
the case every time, so a changed convenant term applies at once and there
is no second copy of the facts to drift.

Terms (the numbers are the convenant's `terms.deadlines`):

* corporation_consent: created + corporation_consent_days (seed 004 §5.2,
  R5); met by the owner's decision, either way.
* intake_decision: created + intake_decision_days (seed 004 §5.1); met by
  the case leaving `aangemeld`.
* inform_overlastgever_start: entered `in_behandeling` +
  inform_overlastgever_days (seed 002 Tabel 1, §7.1); met by
  `overlastgever_geinformeerd` at or after that moment.
* casusoverleg_agenda, one per planned meeting: the meeting's date minus
  agenda_working_days_before_meeting working days (seed 002 §3.4); met by
  `agenda_verzonden` after the meeting was planned (for that meeting, if
  the event names its date).
* inform_overlastgever_close: entered `afgesloten` +
  inform_overlastgever_days (seed 002 Tabel 1, §3.9.3, §7.1); met by
  `overlastgever_geinformeerd` at or after closing.

Choices a successor will ask about:

* **"Start" of the joint approach** is the moment the case entered
  `in_behandeling`: the intake decision to take the report up together
  (seed 002 Tabel 1 "na gezamenlijk oppakken ontvangen melding", §7.1 "na
  het besluit tot de aanpak"). It is the earliest defensible reading, so the
  term is never later than the seed's. A case that went straight from
  `aangemeld` to `geen_complexe_overlast` was never taken up and has no
  such term; one that left `in_behandeling` for `geen_complexe_overlast`
  keeps it (its data was registered, §7.1) but gets no closing term, which
  the seed ties to closing the approach (`afgesloten`).
* **Calendar or working days.** Seed 004 writes "dagen" for consent and
  intake and seed 002 "30 dagen" for informing: calendar days, from the
  moment of the fact. Only the agenda term says "werkdagen" (seed 002 §3.4),
  counted with `broker.calendar_nl`. The Algemene termijnenwet's extension
  of a term that ends on a weekend applies to statutory terms, not to these
  convenant terms, and is not applied: the broker never reports a term as
  later than the convenant sets it.
* **A meeting planned at short notice** (its planning date already past its
  agenda due date) has no agenda term: seed 002 §3.4 lets the 5-day rule
  lapse when a case must be discussed as soon as possible.
* **met / overdue** are two flags, four states: open (false, false); kept
  (true, false); overdue and still open (false, true); met late (true,
  true). `met_at` says when, where the register knows it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from broker.calendar_nl import add_working_days, local_date
from broker.cases.model import Case, CaseEvent, CaseEventKind, CaseStatus, Consent
from broker.convenant import Convenant

FINAL_STATES = frozenset({CaseStatus.afgesloten, CaseStatus.geen_complexe_overlast})


class DeadlineKind(StrEnum):
    corporation_consent = "corporation_consent"
    intake_decision = "intake_decision"
    inform_overlastgever_start = "inform_overlastgever_start"
    casusoverleg_agenda = "casusoverleg_agenda"
    inform_overlastgever_close = "inform_overlastgever_close"


# Terms that can still be met once a case has ended: informing the overlastgever.
STILL_ACTIONABLE_WHEN_FINAL = frozenset(
    {DeadlineKind.inform_overlastgever_start, DeadlineKind.inform_overlastgever_close}
)


@dataclass(frozen=True)
class Deadline:
    kind: DeadlineKind
    due: str  # ISO 8601: a datetime for terms in days, a date for working-day terms
    met: bool
    overdue: bool  # the due moment passed before the term was met (or it still is not)
    met_at: str | None = None  # ISO 8601 datetime of the fact that met it, if known

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "due": self.due,
            "met": self.met,
            "overdue": self.overdue,
            "met_at": self.met_at,
        }


def _timed(
    kind: DeadlineKind, due: datetime, *, met: bool, met_at: datetime | None, now: datetime
) -> Deadline:
    """A term due at a moment. Met without a known moment counts as met on time."""
    overdue = (met_at is not None and met_at > due) if met else now > due
    return Deadline(kind, due.isoformat(), met, overdue, met_at.isoformat() if met_at else None)


def _dated(kind: DeadlineKind, due: date, *, met_at: datetime | None, now: datetime) -> Deadline:
    """A term due by the end of a Dutch calendar day."""
    moment = met_at if met_at is not None else now
    return Deadline(
        kind,
        due.isoformat(),
        met_at is not None,
        local_date(moment) > due,
        met_at.isoformat() if met_at else None,
    )


def _first_entered(case: Case, status: CaseStatus) -> datetime | None:
    return next((moment for name, moment in case.status_history if name == status.value), None)


def _first_event_since(case: Case, kind: CaseEventKind, since: datetime) -> datetime | None:
    moments = [e.at for e in case.events if e.kind == kind and e.at >= since]
    return min(moments) if moments else None


def _agenda_deadlines(case: Case, convenant: Convenant, *, now: datetime) -> list[Deadline]:
    before = convenant.terms.deadlines.agenda_working_days_before_meeting
    meetings: dict[date, CaseEvent] = {}
    for event in case.events:
        if event.kind == CaseEventKind.casusoverleg_gepland and event.date is not None:
            # The first planning of a date counts; planning it again changes nothing.
            meetings.setdefault(event.date, event)
    agendas = [e for e in case.events if e.kind == CaseEventKind.agenda_verzonden]
    deadlines = []
    for meeting_date, planned in sorted(meetings.items()):
        due = add_working_days(meeting_date, -before)
        if local_date(planned.at) > due:
            continue  # short notice: the 5-day rule lapses (seed 002 §3.4)
        sent = [
            a.at
            for a in agendas
            if a.at >= planned.at and (a.date is None or a.date == meeting_date)
        ]
        met_at = min(sent) if sent else None
        deadlines.append(_dated(DeadlineKind.casusoverleg_agenda, due, met_at=met_at, now=now))
    return deadlines


def case_deadlines(case: Case, convenant: Convenant, *, now: datetime) -> list[Deadline]:
    """Every R6 term that has started for `case`, in the order of the process."""
    terms = convenant.terms.deadlines
    deadlines = []
    if case.consent != Consent.not_required:
        deadlines.append(
            _timed(
                DeadlineKind.corporation_consent,
                case.created_at + timedelta(days=terms.corporation_consent_days),
                met=case.consent != Consent.pending,
                met_at=case.consent_decided_at,
                now=now,
            )
        )
    left_intake = next(
        (moment for name, moment in case.status_history if name != CaseStatus.aangemeld.value),
        None,
    )
    deadlines.append(
        _timed(
            DeadlineKind.intake_decision,
            case.created_at + timedelta(days=terms.intake_decision_days),
            met=case.status != CaseStatus.aangemeld,
            met_at=left_intake,
            now=now,
        )
    )
    inform = timedelta(days=terms.inform_overlastgever_days)
    started = _first_entered(case, CaseStatus.in_behandeling)
    if started is not None:
        told = _first_event_since(case, CaseEventKind.overlastgever_geinformeerd, started)
        deadlines.append(
            _timed(
                DeadlineKind.inform_overlastgever_start,
                started + inform,
                met=told is not None,
                met_at=told,
                now=now,
            )
        )
    deadlines.extend(_agenda_deadlines(case, convenant, now=now))
    closed = _first_entered(case, CaseStatus.afgesloten)
    if closed is not None:
        told = _first_event_since(case, CaseEventKind.overlastgever_geinformeerd, closed)
        deadlines.append(
            _timed(
                DeadlineKind.inform_overlastgever_close,
                closed + inform,
                met=told is not None,
                met_at=told,
                now=now,
            )
        )
    return deadlines


def overdue_deadlines(
    cases: Iterable[Case], convenant: Convenant, *, now: datetime, include_met: bool = False
) -> list[tuple[str, Deadline]]:
    """For the DPO: overdue terms as (case id, deadline), earliest due first.

    By default only terms still open, and of an ended case only those that
    can still be met (informing the overlastgever): an unanswered consent
    request of a closed case stays visible in its status, but nobody can act
    on it any more. `include_met` adds terms that were met late.
    """
    found: list[tuple[str, Deadline]] = []
    for case in cases:
        final = case.status in FINAL_STATES
        for deadline in case_deadlines(case, convenant, now=now):
            if not deadline.overdue:
                continue
            if deadline.met and not include_met:
                continue
            if not deadline.met and final and deadline.kind not in STILL_ACTIONABLE_WHEN_FINAL:
                continue
            found.append((case.id, deadline))
    # ISO dates and datetimes sort together by their leading YYYY-MM-DD.
    return sorted(found, key=lambda item: (item[1].due, item[0]))
