"""Tests of retention by destruction (broker/retention): schedule, job, statistics, scheduler.

`open_case` builds a case through the register as the API would, moving it
through the states at the moments a test names.
"""

from __future__ import annotations

from datetime import UTC, datetime

from broker.cases.model import Case, CaseStatus
from broker.cases.register import CaseRegister
from tests.cases import REGISSEUR
from tests.cases.test_register import request

# The personal data `request()` puts in a case, as it could appear in a row.
PERSONAL_NEEDLES = (
    "Willemijn Oosterhuis-Brandsma",
    "Oosterhuis",
    "Reinout van der Kolk",
    "1979-03-14",
    "1985-07-02",
    "4101QZ",
    "Vreeswijkerdam",
)

TO_CLOSED = (
    CaseStatus.in_behandeling,
    CaseStatus.casusoverleg,
    CaseStatus.plan_van_aanpak,
    CaseStatus.monitoring,
    CaseStatus.afgesloten,
)


def open_case(
    cases: CaseRegister, *, created: datetime, moves: tuple[tuple[CaseStatus, datetime], ...] = ()
) -> Case:
    case = cases.create(caller=REGISSEUR, request=request(), now=created)
    for status, moment in moves:
        case = cases.transition(caller=REGISSEUR, case_id=case.id, to=status, now=moment)
    return case


def closed_case(cases: CaseRegister, *, created: datetime, closed: datetime) -> Case:
    """A case taken through the whole process, closed at `closed`."""
    steps = [(status, created) for status in TO_CLOSED[:-1]]
    return open_case(cases, created=created, moves=(*steps, (CaseStatus.afgesloten, closed)))


# Moved to geen_complexe_overlast on the Thursday before Easter 2026, 10:00 in the Netherlands.
NOT_COMPLEX_AT = ((CaseStatus.geen_complexe_overlast, datetime(2026, 4, 2, 8, 0, tzinfo=UTC)),)
