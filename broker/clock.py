"""Time as a parameter (style.md §5): decisions take `now`, the edge reads a Clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, always timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """Render a moment as RFC 3339 in UTC with a `Z` zone, to the microsecond."""
    if moment.tzinfo is None:
        raise ValueError("expected a timezone-aware datetime, got a naive one")
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
