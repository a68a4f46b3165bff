"""The R6 terms per case (broker/deadlines.py): due dates, met and overdue at given moments.

Every table row builds a case value, names `now`, and states which flags the
term must show. T0 is Monday 4 May 2026, 09:00 UTC (11:00 in the Netherlands);
Tuesday 5 May is Bevrijdingsdag and Thursday 14 May Hemelvaartsdag.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from broker.cases.model import (
    Case,
    CaseEvent,
    CaseEventKind,
    CaseStatus,
    Consent,
    decide_consent,
    decide_event,
)
from broker.cases.register import CaseRegister, case_document
from broker.cases.store import SqlCaseStore
from broker.convenant import Convenant
from broker.deadlines import Deadline, DeadlineKind, case_deadlines, overdue_deadlines
from broker.errors import ConflictError, InvalidRequestError
from broker.sql import SqlConnection
from tests.cases import OWNER, REGISSEUR, T0, make_case
from tests.cases.test_register import request

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
INFORMED = CaseEventKind.overlastgever_geinformeerd


def _event(kind: CaseEventKind, at: datetime, day: date | None = None) -> CaseEvent:
    return CaseEvent(kind=kind, by=REGISSEUR, at=at, date=day)


def _case(
    *,
    history: tuple[tuple[CaseStatus, datetime], ...] = (),
    events: tuple[CaseEvent, ...] = (),
    consent: Consent = Consent.pending,
    consent_decided_at: datetime | None = None,
) -> Case:
    status_history = ((CaseStatus.aangemeld.value, T0), *((s.value, t) for s, t in history))
    status = history[-1][0] if history else CaseStatus.aangemeld
    return replace(
        make_case(status=status, consent=consent),
        status_history=status_history,
        events=events,
        consent_decided_at=consent_decided_at,
    )


def _only(case: Case, kind: DeadlineKind, now: datetime, convenant: Convenant) -> Deadline:
    found = [d for d in case_deadlines(case, convenant, now=now) if d.kind == kind]
    assert len(found) == 1, found
    return found[0]


# ---- corporation consent (3 days, seed 004 §5.2) and intake (5 days, seed 004 §5.1) ----

IN_TREATMENT = (CaseStatus.in_behandeling, T0 + 2 * DAY)


@pytest.mark.parametrize(
    ("case", "now", "met", "overdue"),
    [
        # pending, two days in: open
        (_case(), T0 + 2 * DAY, False, False),
        # pending at the due moment itself: not yet overdue
        (_case(), T0 + 3 * DAY, False, False),
        # pending one second after the due moment: overdue
        (_case(), T0 + 3 * DAY + SECOND, False, True),
        # granted after a day: kept
        (_case(consent=Consent.granted, consent_decided_at=T0 + DAY), T0 + 9 * DAY, True, False),
        # refused after a day: an answer, so kept as well
        (_case(consent=Consent.refused, consent_decided_at=T0 + DAY), T0 + 9 * DAY, True, False),
        # granted on day four: met, but late
        (_case(consent=Consent.granted, consent_decided_at=T0 + 4 * DAY), T0 + 9 * DAY, True, True),
        # granted, moment unknown (stored before it was recorded): never accused of lateness
        (_case(consent=Consent.granted), T0 + 9 * DAY, True, False),
    ],
)
def test_corporation_consent_term(
    case: Case, now: datetime, met: bool, overdue: bool, convenant: Convenant
) -> None:
    deadline = _only(case, DeadlineKind.corporation_consent, now, convenant)
    assert deadline.due == (T0 + 3 * DAY).isoformat()
    assert (deadline.met, deadline.overdue) == (met, overdue)


def test_private_dwelling_has_no_consent_term(convenant: Convenant) -> None:
    case = _case(consent=Consent.not_required)
    kinds = [d.kind for d in case_deadlines(case, convenant, now=T0 + 30 * DAY)]
    assert kinds == [DeadlineKind.intake_decision]


@pytest.mark.parametrize(
    ("history", "now", "met", "overdue", "met_at"),
    [
        # still aangemeld on day four: open
        ((), T0 + 4 * DAY, False, False, None),
        # still aangemeld on day six: overdue
        ((), T0 + 6 * DAY, False, True, None),
        # taken up on day two: kept
        ((IN_TREATMENT,), T0 + 30 * DAY, True, False, T0 + 2 * DAY),
        # found not complex on day two: also a decision, kept
        (
            ((CaseStatus.geen_complexe_overlast, T0 + 2 * DAY),),
            T0 + 9 * DAY,
            True,
            False,
            T0 + 2 * DAY,
        ),
        # taken up on day six: met late
        (((CaseStatus.in_behandeling, T0 + 6 * DAY),), T0 + 9 * DAY, True, True, T0 + 6 * DAY),
    ],
)
def test_intake_decision_term(
    history: tuple[tuple[CaseStatus, datetime], ...],
    now: datetime,
    met: bool,
    overdue: bool,
    met_at: datetime | None,
    convenant: Convenant,
) -> None:
    deadline = _only(_case(history=history), DeadlineKind.intake_decision, now, convenant)
    assert deadline.due == (T0 + 5 * DAY).isoformat()
    assert (deadline.met, deadline.overdue) == (met, overdue)
    assert deadline.met_at == (met_at.isoformat() if met_at else None)


# ---- informing the overlastgever (30 days, seed 002 Tabel 1, §7.1) --------------------

START = T0 + 2 * DAY  # the case enters in_behandeling: the joint approach starts


@pytest.mark.parametrize(
    ("events", "now", "met", "overdue"),
    [
        # nobody told, day 29 after the start: open
        ((), START + 29 * DAY, False, False),
        # nobody told, day 31: overdue
        ((), START + 31 * DAY, False, True),
        # told on day 10: kept
        ((_event(INFORMED, START + 10 * DAY),), START + 31 * DAY, True, False),
        # told before the start (while aangemeld): does not count
        ((_event(INFORMED, T0 + DAY),), START + 31 * DAY, False, True),
        # told on day 31: met late
        ((_event(INFORMED, START + 31 * DAY),), START + 40 * DAY, True, True),
        # the melder told instead: does not count for the overlastgever
        ((_event(CaseEventKind.melder_geinformeerd, START + DAY),), START + 31 * DAY, False, True),
    ],
)
def test_inform_overlastgever_after_start_term(
    events: tuple[CaseEvent, ...], now: datetime, met: bool, overdue: bool, convenant: Convenant
) -> None:
    case = _case(history=((CaseStatus.in_behandeling, START),), events=events)
    deadline = _only(case, DeadlineKind.inform_overlastgever_start, now, convenant)
    assert deadline.due == (START + 30 * DAY).isoformat()
    assert (deadline.met, deadline.overdue) == (met, overdue)


def test_case_never_taken_up_has_no_inform_terms(convenant: Convenant) -> None:
    case = _case(history=((CaseStatus.geen_complexe_overlast, T0 + DAY),))
    kinds = {d.kind for d in case_deadlines(case, convenant, now=T0 + 90 * DAY)}
    assert kinds == {DeadlineKind.corporation_consent, DeadlineKind.intake_decision}


CLOSED = T0 + 200 * DAY
CLOSED_HISTORY = (
    (CaseStatus.in_behandeling, START),
    (CaseStatus.casusoverleg, START + DAY),
    (CaseStatus.plan_van_aanpak, START + 10 * DAY),
    (CaseStatus.monitoring, START + 20 * DAY),
    (CaseStatus.afgesloten, CLOSED),
)


@pytest.mark.parametrize(
    ("events", "now", "met", "overdue"),
    [
        # closed, nobody told yet, day 20: open
        ((), CLOSED + 20 * DAY, False, False),
        # closed, nobody told, day 31: overdue
        ((), CLOSED + 31 * DAY, False, True),
        # told at the start only: the close needs its own letter (seed 002 §3.9.3)
        ((_event(INFORMED, START + DAY),), CLOSED + 31 * DAY, False, True),
        # told five days after closing: kept
        (
            (_event(INFORMED, START + DAY), _event(INFORMED, CLOSED + 5 * DAY)),
            CLOSED + 31 * DAY,
            True,
            False,
        ),
    ],
)
def test_inform_overlastgever_after_closing_term(
    events: tuple[CaseEvent, ...], now: datetime, met: bool, overdue: bool, convenant: Convenant
) -> None:
    case = _case(history=CLOSED_HISTORY, events=events)
    deadline = _only(case, DeadlineKind.inform_overlastgever_close, now, convenant)
    assert deadline.due == (CLOSED + 30 * DAY).isoformat()
    assert (deadline.met, deadline.overdue) == (met, overdue)


def test_informing_can_be_recorded_after_closing_but_nothing_else() -> None:
    closed = _case(history=CLOSED_HISTORY)
    later = CLOSED + 3 * DAY
    told = decide_event(closed, INFORMED, by=REGISSEUR, role="gemeente", now=later)
    assert told.events[-1] == CaseEvent(INFORMED, REGISSEUR, later)
    with pytest.raises(ConflictError, match="afgesloten"):
        decide_event(
            closed,
            CaseEventKind.casusoverleg_gepland,
            by=REGISSEUR,
            role="gemeente",
            now=later,
            date=date(2027, 1, 4),
        )


# ---- the agenda, 5 working days before a case meeting (seed 002 §3.4) -----------------

MEETING = date(2026, 5, 18)  # a Monday; Hemelvaartsdag (14 May) lies in the run-up
AGENDA_DUE = date(2026, 5, 8)  # 15, 13, 12, 11, 8 May: five working days before
PLANNED = _event(CaseEventKind.casusoverleg_gepland, T0, MEETING)
AMSTERDAM_EVENING = datetime(2026, 5, 8, 21, 0, tzinfo=UTC)  # 23:00 on 8 May in NL
AGENDA = CaseEventKind.agenda_verzonden


@pytest.mark.parametrize(
    ("events", "now", "met", "overdue"),
    [
        # planned, no agenda, the day before the due date: open
        ((PLANNED,), datetime(2026, 5, 7, 12, 0, tzinfo=UTC), False, False),
        # no agenda, late evening of the due day in the Netherlands: still open
        ((PLANNED,), AMSTERDAM_EVENING, False, False),
        # no agenda, after midnight in the Netherlands: overdue
        ((PLANNED,), datetime(2026, 5, 8, 22, 30, tzinfo=UTC), False, True),
        # agenda sent on the due day: kept
        (
            (PLANNED, _event(AGENDA, AMSTERDAM_EVENING)),
            datetime(2026, 5, 20, tzinfo=UTC),
            True,
            False,
        ),
        # agenda sent the Monday before the meeting: met late
        (
            (PLANNED, _event(AGENDA, datetime(2026, 5, 11, 8, 0, tzinfo=UTC))),
            datetime(2026, 5, 20, tzinfo=UTC),
            True,
            True,
        ),
        # agenda naming this meeting: kept
        (
            (PLANNED, _event(AGENDA, T0 + DAY, MEETING)),
            datetime(2026, 5, 20, tzinfo=UTC),
            True,
            False,
        ),
        # agenda naming another meeting: does not count
        (
            (PLANNED, _event(AGENDA, T0 + DAY, date(2026, 6, 1))),
            datetime(2026, 5, 20, tzinfo=UTC),
            False,
            True,
        ),
        # agenda sent before the meeting was planned: does not count
        ((_event(AGENDA, T0 - DAY), PLANNED), datetime(2026, 5, 20, tzinfo=UTC), False, True),
    ],
)
def test_agenda_term_before_a_case_meeting(
    events: tuple[CaseEvent, ...], now: datetime, met: bool, overdue: bool, convenant: Convenant
) -> None:
    case = _case(history=((CaseStatus.in_behandeling, START),), events=events)
    deadline = _only(case, DeadlineKind.casusoverleg_agenda, now, convenant)
    assert deadline.due == AGENDA_DUE.isoformat()
    assert (deadline.met, deadline.overdue) == (met, overdue)


def test_meeting_planned_at_short_notice_has_no_agenda_term(convenant: Convenant) -> None:
    # Planned on 12 May for 18 May: the 5-day rule lapses (seed 002 §3.4).
    late = _event(CaseEventKind.casusoverleg_gepland, datetime(2026, 5, 12, 9, tzinfo=UTC), MEETING)
    case = _case(history=((CaseStatus.in_behandeling, START),), events=(late,))
    kinds = [d.kind for d in case_deadlines(case, convenant, now=T0 + 30 * DAY)]
    assert DeadlineKind.casusoverleg_agenda not in kinds


def test_each_planned_meeting_has_its_own_agenda_term(convenant: Convenant) -> None:
    second = _event(CaseEventKind.casusoverleg_gepland, T0 + DAY, date(2026, 6, 1))
    again = _event(CaseEventKind.casusoverleg_gepland, T0 + 2 * DAY, MEETING)  # same date twice
    case = _case(history=((CaseStatus.in_behandeling, START),), events=(PLANNED, second, again))
    dues = [
        d.due
        for d in case_deadlines(case, convenant, now=T0)
        if d.kind == DeadlineKind.casusoverleg_agenda
    ]
    # 1 June 2026 is a Monday; Tweede Pinksterdag (25 May) lies in its run-up.
    assert dues == [AGENDA_DUE.isoformat(), "2026-05-22"]


@pytest.mark.parametrize(
    ("kind", "day", "error"),
    [
        # a meeting without a date cannot have an agenda term
        (CaseEventKind.casusoverleg_gepland, None, InvalidRequestError),
        # a date on an event that has none
        (CaseEventKind.melder_geinformeerd, date(2026, 5, 18), InvalidRequestError),
        # a meeting more than a year away: a typo, or pushing the term out of sight
        (CaseEventKind.casusoverleg_gepland, date(2027, 6, 1), InvalidRequestError),
    ],
)
def test_dated_events_are_checked(
    kind: CaseEventKind, day: date | None, error: type[Exception]
) -> None:
    case = _case(history=((CaseStatus.in_behandeling, START),))
    with pytest.raises(error):
        decide_event(case, kind, by=REGISSEUR, role="gemeente", now=T0, date=day)


def test_only_the_regisseur_plans_a_meeting() -> None:
    case = _case(history=((CaseStatus.in_behandeling, START),))
    with pytest.raises(ConflictError, match="politie"):
        decide_event(
            case,
            CaseEventKind.casusoverleg_gepland,
            by="politie-lekstroom",
            role="politie",
            now=T0,
            date=MEETING,
        )


def test_consent_decision_records_its_moment(convenant: Convenant) -> None:
    decided = decide_consent(_case(), OWNER, True, now=T0 + DAY)
    assert decided.consent_decided_at == T0 + DAY
    assert _only(decided, DeadlineKind.corporation_consent, T0 + 9 * DAY, convenant).met_at == (
        (T0 + DAY).isoformat()
    )


# ---- the DPO's list ------------------------------------------------------------------


def test_overdue_deadlines_lists_open_overdue_terms_earliest_first(convenant: Convenant) -> None:
    open_case = replace(_case(), id="case_open")
    kept = replace(
        _case(
            history=((CaseStatus.in_behandeling, T0 + DAY),),
            consent=Consent.granted,
            consent_decided_at=T0 + DAY,
            events=(_event(INFORMED, T0 + 2 * DAY),),
        ),
        id="case_kept",
    )
    late = replace(_case(consent=Consent.granted, consent_decided_at=T0 + 4 * DAY), id="case_late")
    now = T0 + 10 * DAY
    found = overdue_deadlines([open_case, kept, late], convenant, now=now)
    assert [(case_id, d.kind) for case_id, d in found] == [
        ("case_open", DeadlineKind.corporation_consent),
        ("case_late", DeadlineKind.intake_decision),
        ("case_open", DeadlineKind.intake_decision),
    ]
    with_late = overdue_deadlines([late], convenant, now=now, include_met=True)
    assert [(d.kind, d.met) for _, d in with_late] == [
        (DeadlineKind.corporation_consent, True),
        (DeadlineKind.intake_decision, False),
    ]


def test_overdue_deadlines_of_an_ended_case_keep_only_what_can_still_be_done(
    convenant: Convenant,
) -> None:
    # Consent never answered, overlastgever never told: only the letter can still go out.
    ended = replace(_case(history=CLOSED_HISTORY), id="case_ended")
    found = overdue_deadlines([ended], convenant, now=CLOSED + 40 * DAY)
    assert [d.kind for _, d in found] == [
        DeadlineKind.inform_overlastgever_start,
        DeadlineKind.inform_overlastgever_close,
    ]
    status_kinds = {d.kind for d in case_deadlines(ended, convenant, now=CLOSED + 40 * DAY)}
    assert DeadlineKind.corporation_consent in status_kinds


# ---- through the register: the status view ----------------------------------------------


@pytest.fixture
def register(sqlite_path: Path, convenant: Convenant) -> Iterator[CaseRegister]:
    store = SqlCaseStore(SqlConnection(dialect="sqlite", sqlite_path=sqlite_path), kek=b"k" * 32)
    yield CaseRegister(store=store, convenant=convenant)
    store.close()


def test_status_view_reports_overdue_next_to_the_contract_fields(
    register: CaseRegister, convenant: Convenant
) -> None:
    case = register.create(caller=REGISSEUR, request=request(), now=T0)
    register.transition(
        caller=REGISSEUR, case_id=case.id, to=CaseStatus.in_behandeling, now=T0 + DAY
    )
    register.record_event(
        caller=REGISSEUR,
        case_id=case.id,
        kind=CaseEventKind.casusoverleg_gepland,
        now=T0 + DAY,
        date=MEETING,
    )
    # Thursday 7 May, 10:00 UTC: consent is a day late, the agenda is due tomorrow.
    view = register.status_view(caller=REGISSEUR, case_id=case.id, now=T0 + 3 * DAY + 3600 * SECOND)
    rows = {d["kind"]: d for d in view["deadlines"]}
    assert set(rows) == {
        "corporation_consent",
        "intake_decision",
        "inform_overlastgever_start",
        "casusoverleg_agenda",
    }
    for row in rows.values():
        assert set(row) == {"kind", "due", "met", "overdue", "met_at"}
    assert (rows["corporation_consent"]["met"], rows["corporation_consent"]["overdue"]) == (
        False,
        True,
    )
    assert (rows["intake_decision"]["met"], rows["intake_decision"]["overdue"]) == (True, False)
    assert rows["casusoverleg_agenda"] == {
        "kind": "casusoverleg_agenda",
        "due": AGENDA_DUE.isoformat(),
        "met": False,
        "overdue": False,
        "met_at": None,
    }
    # The meeting's date survives the store.
    stored = register.load(case.id)
    assert stored is not None
    assert stored.events[-1].date == MEETING
    document = case_document(stored, convenant, viewer=REGISSEUR, now=T0 + DAY)
    assert document["events"][-1] == {
        "event": "casusoverleg_gepland",
        "by": REGISSEUR,
        "at": (T0 + DAY).isoformat(),
        "date": MEETING.isoformat(),
    }
