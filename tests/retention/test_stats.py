"""The surviving statistic of a case (broker/retention/stats.py): coarse labels only."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, date, datetime

import pytest

from broker.cases.model import CaseKind, CaseStatus
from broker.retention.stats import (
    CaseStatistic,
    duration_bucket,
    statistic_for,
    whole_months,
)
from tests.cases import T0, make_case


@pytest.mark.parametrize(
    ("kind", "status", "ended", "expected"),
    [
        # not complex after three days: Q2, shortest bucket
        (
            CaseKind.complex,
            CaseStatus.geen_complexe_overlast,
            datetime(2026, 5, 7, 9, tzinfo=UTC),
            CaseStatistic("2026-Q2", "geen_complexe_overlast", "complex", "0-1"),
        ),
        # closed after seven months: the 6-9 months of seed 001
        (
            CaseKind.complex,
            CaseStatus.afgesloten,
            datetime(2026, 12, 4, 9, tzinfo=UTC),
            CaseStatistic("2026-Q4", "afgesloten", "complex", "6-9"),
        ),
        # closed one day short of a full year: still 9-12
        (
            CaseKind.enkelvoudig,
            CaseStatus.afgesloten,
            datetime(2027, 5, 3, 9, tzinfo=UTC),
            CaseStatistic("2027-Q2", "afgesloten", "enkelvoudig", "9-12"),
        ),
        # closed on New Year's Eve 23:30 UTC: already 1 January in the Netherlands
        (
            CaseKind.complex,
            CaseStatus.afgesloten,
            datetime(2028, 12, 31, 23, 30, tzinfo=UTC),
            CaseStatistic("2029-Q1", "afgesloten", "complex", "24+"),
        ),
    ],
)
def test_statistic_is_quarter_outcome_kind_and_duration_bucket(
    kind: CaseKind, status: CaseStatus, ended: datetime, expected: CaseStatistic
) -> None:
    case = replace(
        make_case(status=status),
        kind=kind,
        status_history=((CaseStatus.aangemeld.value, T0), (status.value, ended)),
    )
    assert statistic_for(case) == expected


def test_statistic_has_no_field_that_could_name_a_case() -> None:
    assert [f.name for f in fields(CaseStatistic)] == [
        "quarter",
        "outcome",
        "kind",
        "duration_months",
    ]


def test_statistic_of_a_case_in_progress_is_refused() -> None:
    with pytest.raises(ValueError, match="final"):
        statistic_for(make_case(status=CaseStatus.monitoring))


@pytest.mark.parametrize(
    ("start", "end", "months"),
    [
        (date(2026, 5, 4), date(2026, 5, 31), 0),  # within the month
        (date(2026, 5, 4), date(2026, 6, 4), 1),  # to the day
        (date(2026, 5, 31), date(2026, 6, 30), 0),  # a day short
        (date(2026, 5, 4), date(2028, 5, 4), 24),  # two years
        (date(2026, 5, 4), date(2026, 5, 1), 0),  # an end before the start counts as none
    ],
)
def test_whole_months(start: date, end: date, months: int) -> None:
    assert whole_months(start, end) == months


@pytest.mark.parametrize(
    ("months", "bucket"),
    [(0, "0-1"), (1, "1-3"), (5, "3-6"), (6, "6-9"), (11, "9-12"), (23, "12-24"), (24, "24+")],
)
def test_duration_buckets_have_exclusive_upper_bounds(months: int, bucket: str) -> None:
    assert duration_bucket(months) == bucket
