"""Dutch public holidays and working-day arithmetic (broker/calendar_nl.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from broker.calendar_nl import (
    add_working_days,
    dutch_public_holidays,
    easter_sunday,
    is_working_day,
    koningsdag,
    local_date,
)


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        (2024, date(2024, 3, 31)),  # early Easter
        (2025, date(2025, 4, 20)),
        (2026, date(2026, 4, 5)),
        (2027, date(2027, 3, 28)),  # Easter in March again
        (2028, date(2028, 4, 16)),  # leap year
        (2029, date(2029, 4, 1)),
        (2030, date(2030, 4, 21)),  # late Easter
    ],
)
def test_easter_sunday_matches_the_published_dates(year: int, easter: date) -> None:
    assert easter_sunday(year) == easter
    assert easter.weekday() == 6


HOLIDAYS = {
    2025: {
        date(2025, 1, 1),  # Nieuwjaarsdag
        date(2025, 4, 18),  # Goede Vrijdag (Atw art. 3(2))
        date(2025, 4, 20),  # Eerste Paasdag
        date(2025, 4, 21),  # Tweede Paasdag
        date(2025, 4, 26),  # Koningsdag: the 27th is a Sunday, so Saturday the 26th
        date(2025, 5, 5),  # Bevrijdingsdag in a lustrum year
        date(2025, 5, 29),  # Hemelvaartsdag
        date(2025, 6, 8),  # Eerste Pinksterdag
        date(2025, 6, 9),  # Tweede Pinksterdag
        date(2025, 12, 25),  # Eerste Kerstdag
        date(2025, 12, 26),  # Tweede Kerstdag
    },
    2026: {
        date(2026, 1, 1),
        date(2026, 4, 3),
        date(2026, 4, 5),
        date(2026, 4, 6),
        date(2026, 4, 27),  # Koningsdag on a Monday
        date(2026, 5, 5),  # Bevrijdingsdag outside a lustrum year still counts (Atw art. 3(1))
        date(2026, 5, 14),
        date(2026, 5, 24),
        date(2026, 5, 25),
        date(2026, 12, 25),
        date(2026, 12, 26),
    },
    2027: {
        date(2027, 1, 1),
        date(2027, 3, 26),
        date(2027, 3, 28),
        date(2027, 3, 29),
        date(2027, 4, 27),
        date(2027, 5, 5),
        date(2027, 5, 6),  # Hemelvaartsdag the day after Bevrijdingsdag
        date(2027, 5, 16),
        date(2027, 5, 17),
        date(2027, 12, 25),
        date(2027, 12, 26),
    },
}


@pytest.mark.parametrize("year", sorted(HOLIDAYS))
def test_public_holidays_are_exactly_the_atw_list(year: int) -> None:
    assert dutch_public_holidays(year) == HOLIDAYS[year]


@pytest.mark.parametrize(
    ("year", "expected"),
    [
        (2025, date(2025, 4, 26)),  # 27 April 2025 is a Sunday: celebrated on Saturday
        (2031, date(2031, 4, 26)),  # and again in 2031
        (2026, date(2026, 4, 27)),  # a Monday: the day itself
        (2028, date(2028, 4, 27)),  # a Thursday: the day itself
    ],
)
def test_koningsdag_moves_to_saturday_only_when_the_27th_is_a_sunday(
    year: int, expected: date
) -> None:
    assert koningsdag(year) == expected
    assert expected in dutch_public_holidays(year)


def test_years_before_koningsdag_are_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="2014"):
        dutch_public_holidays(2013)


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 5, 4), True),  # an ordinary Monday
        (date(2026, 5, 5), False),  # Bevrijdingsdag on a Tuesday
        (date(2026, 5, 9), False),  # Saturday
        (date(2026, 5, 10), False),  # Sunday
        (date(2026, 4, 3), False),  # Goede Vrijdag
        (date(2026, 5, 15), True),  # the Friday after Hemelvaart: not in the Atw list
        (date(2026, 12, 24), True),  # Christmas Eve is a working day
        (date(2026, 12, 28), True),  # the Monday after Christmas
    ],
)
def test_working_days_are_weekdays_that_are_not_holidays(day: date, working: bool) -> None:
    assert is_working_day(day) is working


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        # Thursday before Easter 2026: Goede Vrijdag, the weekend and Tweede Paasdag skipped
        (date(2026, 4, 2), 5, date(2026, 4, 13)),
        # the Wednesday before Easter: Maundy Thursday is still a working day
        (date(2026, 4, 1), 1, date(2026, 4, 2)),
        # Christmas Eve 2026 (Thursday): Christmas Friday and the weekend skipped
        (date(2026, 12, 24), 1, date(2026, 12, 28)),
        # Christmas Eve 2025 (Wednesday): both Christmas days and the weekend skipped
        (date(2025, 12, 24), 1, date(2025, 12, 29)),
        # New Year's Eve 2026 (Thursday) into 2027: Nieuwjaarsdag is a Friday
        (date(2026, 12, 31), 1, date(2027, 1, 4)),
        # an ordinary Friday: the weekend skipped
        (date(2026, 5, 8), 1, date(2026, 5, 11)),
        # starting on a Saturday: Monday is the first working day after it
        (date(2026, 5, 9), 1, date(2026, 5, 11)),
        # Monday 4 May 2026 plus 5: Bevrijdingsdag skipped
        (date(2026, 5, 4), 5, date(2026, 5, 12)),
        # zero days: the start itself, even on a Sunday
        (date(2026, 5, 10), 0, date(2026, 5, 10)),
        # backwards: 5 working days before Monday 11 May 2026 skip Bevrijdingsdag
        (date(2026, 5, 11), -5, date(2026, 5, 1)),
        # backwards over Hemelvaartsdag 2026 (Thursday 14 May)
        (date(2026, 5, 18), -5, date(2026, 5, 8)),
    ],
)
def test_add_working_days_counts_only_working_days(start: date, n: int, expected: date) -> None:
    assert add_working_days(start, n) == expected


def test_add_working_days_refuses_an_unbounded_count() -> None:
    with pytest.raises(ValueError, match="600"):
        add_working_days(date(2026, 1, 1), 100_000)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # winter (CET, UTC+1): 23:30 UTC on Thursday is Friday in the Netherlands
        (datetime(2026, 1, 15, 23, 30, tzinfo=UTC), date(2026, 1, 16)),
        # winter, 22:59 UTC is still Thursday
        (datetime(2026, 1, 15, 22, 59, tzinfo=UTC), date(2026, 1, 15)),
        # summer (CEST, UTC+2): 22:30 UTC is already the next day
        (datetime(2026, 7, 15, 22, 30, tzinfo=UTC), date(2026, 7, 16)),
        # summer, 21:59 UTC is still the same day
        (datetime(2026, 7, 15, 21, 59, tzinfo=UTC), date(2026, 7, 15)),
    ],
)
def test_local_date_is_the_dutch_calendar_day(moment: datetime, expected: date) -> None:
    assert local_date(moment) == expected


def test_local_date_refuses_a_naive_moment() -> None:
    with pytest.raises(ValueError, match="naive"):
        local_date(datetime(2026, 1, 15, 12, 0))
