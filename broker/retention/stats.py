"""The statistics that survive a destroyed case: counts without person-level data.

What it does: keeps one table, `case_statistics`, of counts per quarter in
which a case ended, its outcome (`geen_complexe_overlast` or `afgesloten`),
its kind (`enkelvoudig`, `complex`) and how long it ran (a bucket of whole
months). The retention job adds a case's count in the same transaction that
destroys its personal data (`SqlCaseStore.destroy_personal_data`), so a
case is counted exactly once, and only when its data goes.

What it does not: hold a case id, reference, partner, address, subject, ref
or exact date. A row cannot be traced back to a case, let alone a person:
seed 002 §7.3 (3) allows keeping data for evaluation and research only "in
niet tot individuele personen herleidbare vorm" (AVG art. 89(1)). Small
counts are kept as they are; suppressing small cells is the job of whoever
publishes a report (the dashboard), not of the record.

Why buckets of months: seed 001 reports cases going from 6-7 years to 6-9
months; the buckets separate exactly those ranges and nothing finer.

The table lives on the case register's connection (broker/sql.py), so the
count and the destruction commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from broker.calendar_nl import local_date
from broker.cases.model import Case, CaseStatus
from broker.sql import Cursor, SqlConnection

FINAL_STATES = frozenset({CaseStatus.geen_complexe_overlast, CaseStatus.afgesloten})

# (upper bound in whole months, exclusive; label). Anything longer is "24+".
DURATION_BUCKETS: tuple[tuple[int, str], ...] = (
    (1, "0-1"),
    (3, "1-3"),
    (6, "3-6"),
    (9, "6-9"),
    (12, "9-12"),
    (24, "12-24"),
)
LONGEST_BUCKET = "24+"


@dataclass(frozen=True)
class CaseStatistic:
    """What one ended case adds to the statistics: four coarse labels, nothing else."""

    quarter: str  # "2026-Q2": the quarter (Dutch calendar) in which the case ended
    outcome: str  # geen_complexe_overlast | afgesloten
    kind: str  # enkelvoudig | complex
    duration_months: str  # a DURATION_BUCKETS label


@dataclass(frozen=True)
class StatisticsRow:
    quarter: str
    outcome: str
    kind: str
    duration_months: str
    cases: int

    def to_dict(self) -> dict[str, str | int]:
        return {
            "quarter": self.quarter,
            "outcome": self.outcome,
            "kind": self.kind,
            "duration_months": self.duration_months,
            "cases": self.cases,
        }


def whole_months(start: date, end: date) -> int:
    """Whole calendar months from `start` to `end` (0 if `end` is not later)."""
    months = (end.year - start.year) * 12 + end.month - start.month
    if end.day < start.day:
        months -= 1
    return max(months, 0)


def duration_bucket(months: int) -> str:
    return next((label for bound, label in DURATION_BUCKETS if months < bound), LONGEST_BUCKET)


def quarter_of(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def statistic_for(case: Case) -> CaseStatistic:
    """The statistic of an ended case, taken before its personal data goes.

    The end is when the case entered its final state; a case whose history
    lacks that moment is dated by its creation (never later than the truth).
    """
    if case.status not in FINAL_STATES:
        raise ValueError(f"expected a case in a final state, got {case.status.value!r}")
    ended = local_date(case.entered(case.status) or case.created_at)
    began = local_date(case.created_at)
    return CaseStatistic(
        quarter=quarter_of(ended),
        outcome=case.status.value,
        kind=case.kind.value,
        duration_months=duration_bucket(whole_months(began, ended)),
    )


def create_statistics_table(cur: Cursor) -> None:
    cur.execute(
        "CREATE TABLE IF NOT EXISTS case_statistics ("
        " quarter TEXT NOT NULL, outcome TEXT NOT NULL, kind TEXT NOT NULL,"
        " duration_months TEXT NOT NULL, cases INTEGER NOT NULL,"
        " PRIMARY KEY (quarter, outcome, kind, duration_months))"
    )


def record_case_statistics(cur: Cursor, statistic: CaseStatistic) -> None:
    """Count one case, inside the caller's transaction (the destruction's)."""
    # ON CONFLICT ... DO UPDATE: SQLite >= 3.24 and PostgreSQL >= 9.5 alike.
    cur.execute(
        "INSERT INTO case_statistics (quarter, outcome, kind, duration_months, cases)"
        " VALUES (?, ?, ?, ?, 1)"
        " ON CONFLICT (quarter, outcome, kind, duration_months)"
        " DO UPDATE SET cases = case_statistics.cases + 1",
        (statistic.quarter, statistic.outcome, statistic.kind, statistic.duration_months),
    )


def statistics(connection: SqlConnection) -> list[StatisticsRow]:
    """Every count, oldest quarter first."""
    with connection.transaction() as cur:
        cur.execute(
            "SELECT quarter, outcome, kind, duration_months, cases FROM case_statistics"
            " ORDER BY quarter, outcome, kind, duration_months"
        )
        rows = cur.fetchall()
    return [StatisticsRow(str(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4])) for r in rows]
