"""Dutch working days: the public holidays and working-day arithmetic behind R6 and R7.

What it does: names the Dutch public holidays of a year, says whether a
date is a working day, adds (or subtracts) working days, and turns a moment
into the Dutch calendar date it falls on. Pure functions over dates; the
only thing read from outside is the time-zone table for Europe/Amsterdam.

What it does not: decide any term. `broker.deadlines` and
`broker.retention.schedule` say which terms count in working days (seed 002
§3.4 agenda, §3.4.2 destruction) and which in calendar days.

Why this list of holidays. A working-day term needs one list that a
successor can defend. The broker follows the Algemene termijnenwet (Atw),
the law that says which days are "algemeen erkende feestdagen" for terms:

* Atw art. 3(1): Nieuwjaarsdag, the Christian second Easter and Whit days
  (Tweede Paasdag, Tweede Pinksterdag), both Christmas days, Hemelvaartsdag,
  the day on which the King's birthday is celebrated (Koningsdag), and
  "de vijfde mei" (Bevrijdingsdag);
* Atw art. 3(2): Goede Vrijdag is equated with them.

Bevrijdingsdag therefore counts **every year**. The government's rule for
its own staff (a day off once every five years, in lustrum years) and the
many collective agreements that give it every year are about days off, not
about terms; the Atw names 5 May without condition, and so do we.

Eerste Paasdag and Eerste Pinksterdag are Sundays and so never working days;
they are listed because people look for them, and change no arithmetic.

Koningsdag is 27 April, or 26 April when the 27th is a Sunday (the royal
decree of 2013 that moved the celebration to the King's birthday). Before
2014 the day was Koninginnedag with other rules; this module refuses those
years instead of guessing.

Not included: days equated ad hoc under Atw art. 3(3) by a decree in the
Staatscourant (in practice bridge days such as the Friday after
Hemelvaartsdag). They are announced a few years at a time and cannot be
computed. Leaving them out makes a term at most a day or two *shorter*
than the Atw's, so a destruction happens no later than the rule requires.

Easter Sunday comes from the anonymous Gregorian algorithm (Meeus, Jones,
Butcher), which is exact for every Gregorian year.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

FIRST_SUPPORTED_YEAR = 2014  # the first year of Koningsdag on 27 April
SATURDAY = 5  # date.weekday(): Monday is 0
SUNDAY = 6
# Bound on |n| in add_working_days: convenant terms are at most 60 working
# days (broker/convenant/model.py); ten times that is still under three years.
MAX_WORKING_DAYS = 600


def easter_sunday(year: int) -> date:
    """Easter Sunday of a Gregorian year (anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_shift = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday_shift) // 451
    month, day = divmod(h + weekday_shift - 7 * m + 114, 31)
    return date(year, month, day + 1)


def koningsdag(year: int) -> date:
    """27 April, or the 26th when the 27th is a Sunday."""
    day = date(year, 4, 27)
    return day - timedelta(days=1) if day.weekday() == SUNDAY else day


@lru_cache(maxsize=64)
def dutch_public_holidays(year: int) -> frozenset[date]:
    """The public holidays of `year` as the Algemene termijnenwet counts them (art. 3(1)-(2))."""
    if year < FIRST_SUPPORTED_YEAR:
        raise ValueError(f"expected a year from {FIRST_SUPPORTED_YEAR} (Koningsdag), got {year}")
    easter = easter_sunday(year)
    return frozenset(
        {
            date(year, 1, 1),  # Nieuwjaarsdag
            easter - timedelta(days=2),  # Goede Vrijdag (Atw art. 3(2))
            easter,  # Eerste Paasdag (a Sunday)
            easter + timedelta(days=1),  # Tweede Paasdag
            koningsdag(year),
            date(year, 5, 5),  # Bevrijdingsdag, every year ("de vijfde mei")
            easter + timedelta(days=39),  # Hemelvaartsdag
            easter + timedelta(days=49),  # Eerste Pinksterdag (a Sunday)
            easter + timedelta(days=50),  # Tweede Pinksterdag
            date(year, 12, 25),  # Eerste Kerstdag
            date(year, 12, 26),  # Tweede Kerstdag
        }
    )


def is_working_day(day: date) -> bool:
    """Monday to Friday and not a public holiday."""
    return day.weekday() < SATURDAY and day not in dutch_public_holidays(day.year)


def add_working_days(start: date, n: int) -> date:
    """The date `n` working days after `start` (before it when `n` is negative).

    `start` itself is never counted, so a case moved on a Thursday before
    Easter reaches its fifth working day on the Monday after next (Goede
    Vrijdag and Tweede Paasdag are skipped). `n == 0` gives `start`.
    """
    if not -MAX_WORKING_DAYS <= n <= MAX_WORKING_DAYS:
        raise ValueError(f"expected |n| <= {MAX_WORKING_DAYS} working days, got {n}")
    step = timedelta(days=1 if n >= 0 else -1)
    day, remaining = start, abs(n)
    while remaining:
        day += step
        if is_working_day(day):
            remaining -= 1
    return day


@cache
def _amsterdam() -> ZoneInfo:
    # Fails loudly (ZoneInfoNotFoundError) on a system without time-zone data:
    # a wrong date would shift every term by a day.
    return ZoneInfo("Europe/Amsterdam")


def local_date(moment: datetime) -> date:
    """The Dutch calendar date of a moment: 23:30 UTC on a winter Thursday is Friday."""
    if moment.tzinfo is None:
        raise ValueError("expected a timezone-aware datetime, got a naive one")
    return moment.astimezone(_amsterdam()).date()
