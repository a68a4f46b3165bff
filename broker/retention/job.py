"""The retention job: destroy what is due, count it, and say so in the audit log (R7).

What it does, per run (`run_retention`):

1. Logs any destruction an earlier run made but could not log (it stopped
   between destroying and logging): the log must say what was destroyed.
2. For every case in a final state whose destruction is due today or
   earlier (`schedule.destruction_due`): takes its statistic, then
   crypto-shreds it (`CaseRegister.destroy_personal_data`: wrapped key and
   sealed personal data deleted, statistic counted, in one transaction),
   then appends one `retention` entry to the audit log and marks the
   destruction logged.

What it does not: touch the audit log's existing entries (they hold
pseudonyms only, ADR 0004, and the hash chain must keep verifying), or
decide anything by the wall clock (`now` is a parameter; `serve` passes the
clock's, the CLI `--now` if given).

Idempotent: a destroyed case has no due date any more, so a second run
destroys nothing and logs nothing. Two brokers on one PostgreSQL database
may both run it: the DELETE decides who destroyed a case, and only that one
logs it. Logging is at-least-once: a crash after the entry and before the
mark logs the destruction again next run (a duplicate beats a gap).

An entry holds no personal data, only the case id, the rule and the
convenant's terms:

    {"kind": "retention", "time", "case", "event": "personal_data_destroyed",
     "reason", "due", "convenant": {"id", "version"}, "retention_terms",
     "decision": "destroyed"}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from broker.audit.log import AuditLog
from broker.calendar_nl import local_date
from broker.cases.register import CaseRegister
from broker.clock import rfc3339
from broker.convenant import Convenant
from broker.retention.schedule import destruction_due, destruction_reason
from broker.retention.stats import FINAL_STATES, statistic_for

# For a destruction found unlogged whose case is in no final state (made
# outside this job, e.g. by an operator): the log still gets an entry.
REASON_OUTSIDE_RETENTION = "destroyed_outside_retention"


@dataclass(frozen=True)
class RetentionReport:
    destroyed: list[str]  # case ids destroyed by this run
    checked: int  # cases in a final state looked at
    logged_late: list[str] = field(default_factory=list)  # earlier destructions logged now

    def to_dict(self) -> dict[str, Any]:
        return {
            "destroyed": list(self.destroyed),
            "checked": self.checked,
            "logged_late": list(self.logged_late),
        }


def retention_entry(
    *, time: datetime, case_id: str, reason: str, due: date | None, convenant: Convenant
) -> dict[str, Any]:
    """The audit entry of one destruction: case id, rule and terms, no personal data."""
    return {
        "kind": "retention",
        "time": rfc3339(time),
        "case": case_id,
        "event": "personal_data_destroyed",
        "reason": reason,
        "due": due.isoformat() if due else None,
        "convenant": {"id": convenant.id, "version": convenant.version},
        "retention_terms": convenant.terms.retention.model_dump(),
        "decision": "destroyed",
    }


def _log_unlogged(
    *, cases: CaseRegister, audit: AuditLog, convenant: Convenant, now: datetime
) -> list[str]:
    logged = []
    for case_id in cases.unlogged_destructions():
        case = cases.load(case_id)
        reason = destruction_reason(case) if case is not None else None
        audit.record(
            retention_entry(
                time=now,
                case_id=case_id,
                reason=reason.value if reason else REASON_OUTSIDE_RETENTION,
                due=None,
                convenant=convenant,
            )
        )
        cases.mark_destruction_logged(case_id)
        logged.append(case_id)
    return logged


def run_retention(
    *, cases: CaseRegister, audit: AuditLog, convenant: Convenant, now: datetime
) -> RetentionReport:
    """Destroy every case's personal data that is due on `now`'s Dutch date; log each one.

    Raises what the register or the audit log raises (BackendUnavailableError,
    AuditWriteError); a destruction already made then stays noted as
    unlogged and the next run logs it.
    """
    logged_late = _log_unlogged(cases=cases, audit=audit, convenant=convenant, now=now)
    today = local_date(now)
    checked = 0
    destroyed = []
    for case in cases.cases_in_states(FINAL_STATES):
        checked += 1
        due = destruction_due(case, convenant)
        reason = destruction_reason(case)
        if due is None or reason is None or due > today:
            continue
        # The statistic is taken from the case as it is before destruction and
        # counted in the destruction's own transaction (seed 002 §7.3 (3)).
        if not cases.destroy_personal_data(case.id, now=now, statistic=statistic_for(case)):
            continue  # another broker process destroyed it first; it logs it
        audit.record(
            retention_entry(
                time=now, case_id=case.id, reason=reason.value, due=due, convenant=convenant
            )
        )
        cases.mark_destruction_logged(case.id)
        destroyed.append(case.id)
    return RetentionReport(destroyed=destroyed, checked=checked, logged_late=logged_late)
