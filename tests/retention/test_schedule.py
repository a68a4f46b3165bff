"""When destruction is due (broker/retention/schedule.py): pure, over case values."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from broker.cases.model import Case, CaseStatus
from broker.convenant import Convenant
from broker.retention.schedule import (
    DestructionReason,
    add_years,
    destruction_due,
    destructions_due,
)
from tests.cases import T0, make_case


def _ended(status: CaseStatus, at: datetime, *, case_id: str = "case_x") -> Case:
    case = make_case(case_id=case_id, status=status)
    return replace(case, status_history=(*case.status_history, (status.value, at)))


def _with_retention(convenant: Convenant, **terms: int) -> Convenant:
    retention = convenant.terms.retention.model_copy(update=terms)
    return convenant.model_copy(
        update={"terms": convenant.terms.model_copy(update={"retention": retention})}
    )


@pytest.mark.parametrize(
    ("status", "entered", "due"),
    [
        # Thursday before Easter: Goede Vrijdag, weekend, Tweede Paasdag skipped
        (CaseStatus.geen_complexe_overlast, datetime(2026, 4, 2, 8, tzinfo=UTC), date(2026, 4, 13)),
        # Monday 4 May: Bevrijdingsdag (Tuesday) skipped
        (CaseStatus.geen_complexe_overlast, datetime(2026, 5, 4, 9, tzinfo=UTC), date(2026, 5, 12)),
        # 23:30 UTC on Thursday 15 January is Friday in the Netherlands: counted from Friday
        (
            CaseStatus.geen_complexe_overlast,
            datetime(2026, 1, 15, 23, 30, tzinfo=UTC),
            date(2026, 1, 23),
        ),
        # moved on Christmas Eve 2026 (Thursday): Christmas, the weekend and Nieuwjaarsdag skipped
        (
            CaseStatus.geen_complexe_overlast,
            datetime(2026, 12, 24, 9, tzinfo=UTC),
            date(2027, 1, 4),
        ),
        # closed: five years to the day
        (CaseStatus.afgesloten, datetime(2026, 6, 10, 10, tzinfo=UTC), date(2031, 6, 10)),
        # closed on a leap day: kept the full five years, destroyed on 1 March
        (CaseStatus.afgesloten, datetime(2028, 2, 29, 10, tzinfo=UTC), date(2033, 3, 1)),
    ],
)
def test_destruction_is_due_by_the_seeds_rule_and_the_dutch_calendar(
    convenant: Convenant, status: CaseStatus, entered: datetime, due: date
) -> None:
    assert destruction_due(_ended(status, entered), convenant) == due


@pytest.mark.parametrize(
    "status",
    [
        # every state before the end: no rule applies yet
        CaseStatus.aangemeld,
        CaseStatus.in_behandeling,
        CaseStatus.casusoverleg,
        CaseStatus.plan_van_aanpak,
        CaseStatus.monitoring,
    ],
)
def test_cases_in_progress_have_no_destruction_date(
    convenant: Convenant, status: CaseStatus
) -> None:
    assert destruction_due(make_case(status=status), convenant) is None


def test_destroyed_case_has_no_destruction_date(convenant: Convenant) -> None:
    case = replace(
        _ended(CaseStatus.geen_complexe_overlast, T0), personal_data_destroyed=True, address=None
    )
    assert destruction_due(case, convenant) is None


@pytest.mark.parametrize(
    ("terms", "status", "due"),
    [
        # two working days instead of five
        ({"not_complex_working_days": 2}, CaseStatus.geen_complexe_overlast, date(2026, 5, 7)),
        # seven years instead of five
        ({"closed_case_years": 7}, CaseStatus.afgesloten, date(2033, 5, 4)),
    ],
)
def test_terms_come_from_the_convenant(
    convenant: Convenant, terms: dict[str, int], status: CaseStatus, due: date
) -> None:
    case = _ended(status, T0)  # Monday 4 May 2026
    assert destruction_due(case, _with_retention(convenant, **terms)) == due


def test_a_case_without_its_end_in_the_history_is_dated_by_its_creation(
    convenant: Convenant,
) -> None:
    # Never later than the truth: the creation precedes any transition.
    case = make_case(status=CaseStatus.geen_complexe_overlast)
    assert destruction_due(case, convenant) == date(2026, 5, 12)


def test_destructions_due_lists_overdue_and_upcoming_within_the_horizon(
    convenant: Convenant,
) -> None:
    overdue = _ended(CaseStatus.geen_complexe_overlast, T0, case_id="case_overdue")
    soon = _ended(CaseStatus.afgesloten, datetime(2021, 6, 1, tzinfo=UTC), case_id="case_soon")
    later = _ended(CaseStatus.afgesloten, datetime(2022, 1, 1, tzinfo=UTC), case_id="case_later")
    busy = make_case(case_id="case_busy", status=CaseStatus.monitoring)
    now = datetime(2026, 5, 20, 12, tzinfo=UTC)
    found = destructions_due([later, busy, soon, overdue], convenant, now=now, horizon_days=30)
    assert [(d.case.id, d.due, d.reason) for d in found] == [
        ("case_overdue", date(2026, 5, 12), DestructionReason.not_complex),
        ("case_soon", date(2026, 6, 1), DestructionReason.closed),
    ]
    assert [d.case.id for d in destructions_due([soon], convenant, now=now, horizon_days=0)] == []
    with pytest.raises(ValueError, match="horizon"):
        destructions_due([], convenant, now=now, horizon_days=-1)


@pytest.mark.parametrize(
    ("day", "years", "expected"),
    [
        (date(2026, 6, 10), 5, date(2031, 6, 10)),  # an ordinary day
        (date(2028, 2, 29), 5, date(2033, 3, 1)),  # leap day into a common year
        (date(2028, 2, 29), 4, date(2032, 2, 29)),  # leap day into a leap year
    ],
)
def test_add_years_never_shortens_the_term(day: date, years: int, expected: date) -> None:
    assert add_years(day, years) == expected
