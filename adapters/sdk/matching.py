"""Finding the subject in a partner's records, and bounding answers by period.

Partners hold no shared identifier (no BSN flows through the broker), so the
adapters match on what the case register knows: full name and birth date.
Names compare case-insensitively with runs of whitespace collapsed, so
"Marco  de Wit" and "marco de wit" are one person; anything looser (initials,
fuzzy spelling) would risk answering about the wrong person, which is worse
than answering "unknown".
"""

from __future__ import annotations

from datetime import date

from broker.adapter_protocol import QueryPeriod, QuerySubject


def normalise_name(name: str) -> str:
    return " ".join(name.split()).casefold()


def is_subject(subject: QuerySubject, *, full_name: str, birth_date: date) -> bool:
    return (
        normalise_name(full_name) == normalise_name(subject.name)
        and birth_date == subject.birth_date
    )


def in_period(day: date, period: QueryPeriod | None) -> bool:
    """True when `day` lies in the period; no period means no bound."""
    return period is None or period.contains(day)


def overlaps_period(start: date, end: date | None, period: QueryPeriod | None) -> bool:
    """True when [start, end] (end None = still running) overlaps the period."""
    if period is None:
        return True
    return start <= period.to and (end is None or end >= period.from_)
