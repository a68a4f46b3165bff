"""When a case's personal data is due for destruction (R7). Pure: no I/O, no clock.

What it does: `destruction_due(case, convenant)` gives the Dutch calendar
date from which the retention job destroys a case's personal data, and
`destructions_due(cases, convenant, now=..., horizon_days=...)` lists the
destructions that are overdue or come within the horizon, for the DPO.

What it does not: destroy anything (broker/retention/job.py does), or keep
a case longer on request: a hold (e.g. a renewed report within the period,
seed 002 §7.3 (2)) would be a new rule with its own legal basis.

The terms come from the convenant (`terms.retention`), never from code:

* `geen_complexe_overlast`: the personal data other partners provided is
  destroyed within `not_complex_working_days` working days (seed 002
  §3.4.2: "binnen 5 werkdagen"). Due on the last of those working days,
  counted from the day the case entered the state, that day not counted:
  partners keep the data the seed allows them and not a day longer.
* `afgesloten`: kept `closed_case_years` years after closing, then destroyed
  (seed 002 §7.3 (1), §7.4). Due on the anniversary of the closing date;
  a case closed on 29 February is due on 1 March, so it is kept the full
  term.

Days are Dutch calendar days (`broker.calendar_nl.local_date`): a case moved
at 23:30 UTC on a winter Thursday was moved on Friday in the Netherlands.
A case whose history lacks the moment it entered its state is dated by its
creation, which is never later than the truth.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from broker.calendar_nl import add_working_days, local_date
from broker.cases.model import Case, CaseStatus
from broker.convenant import Convenant

DEFAULT_HORIZON_DAYS = 30


class DestructionReason(StrEnum):
    # The codes name the seed's rule; the number of days or years is the convenant's.
    not_complex = "not_complex_after_5_working_days"  # seed 002 §3.4.2
    closed = "closed_5_years"  # seed 002 §7.3-7.4


@dataclass(frozen=True)
class DueDestruction:
    case: Case
    due: date
    reason: DestructionReason


def add_years(day: date, years: int) -> date:
    """The same calendar day `years` later; 29 February becomes 1 March in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a common year
        return date(day.year + years, 3, 1)


def _entered_final_state(case: Case) -> datetime:
    return case.entered(case.status) or case.created_at


def destruction_reason(case: Case) -> DestructionReason | None:
    if case.status == CaseStatus.geen_complexe_overlast:
        return DestructionReason.not_complex
    if case.status == CaseStatus.afgesloten:
        return DestructionReason.closed
    return None


def destruction_due(case: Case, convenant: Convenant) -> date | None:
    """The date from which the case's personal data must be gone; None if no rule applies yet."""
    if case.personal_data_destroyed:
        return None
    terms = convenant.terms.retention
    reason = destruction_reason(case)
    if reason is None:
        return None
    entered = local_date(_entered_final_state(case))
    if reason == DestructionReason.not_complex:
        return add_working_days(entered, terms.not_complex_working_days)
    return add_years(entered, terms.closed_case_years)


def destructions_due(
    cases: Iterable[Case],
    convenant: Convenant,
    *,
    now: datetime,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
) -> list[DueDestruction]:
    """Destructions overdue or due within `horizon_days` of today, earliest first."""
    if horizon_days < 0:
        raise ValueError(f"expected a horizon of 0 or more days, got {horizon_days}")
    until = local_date(now) + timedelta(days=horizon_days)
    found = []
    for case in cases:
        due = destruction_due(case, convenant)
        reason = destruction_reason(case)
        if due is not None and reason is not None and due <= until:
            found.append(DueDestruction(case=case, due=due, reason=reason))
    return sorted(found, key=lambda d: (d.due, d.case.id))
