"""The data-subject access report and confidentiality holds (contract.md, Audit log).

Endpoints:

* `GET /v1/audit/subjects/{ref}?case=` (the DPO, `audit:read`): the AVG art.
  15 report of one person in one case (`broker.audit.access_report`).
  Pseudonyms are keyed per case, so `case` is required. An unknown case
  and a case whose data key is destroyed (R7) answer the same 404: nobody
  can link the log to the person any more, and the answer does not say
  which. A ref that is not a subject of the case gets a report with no
  rows, not an error: the report says what the log holds about that ref,
  and the log is the evidence, not the register.
* `POST /v1/audit/entries/{index}/hold` `{"reason"}` (`audit:own`): the
  provider of an exchange entry keeps it out of access reports, e.g. the
  police while an investigation runs. Anyone else, and an absent or
  non-exchange index, gets the same 404; 409 if it is already held.
* `DELETE /v1/audit/entries/{index}/hold` (`audit:own`): the partner that
  set the hold lifts it; 409 if it is not held.
* `GET /v1/audit/holds`: every hold, active and lifted, with who set it and
  why. The DPO (`audit:read`) sees all; a partner (`audit:own`) sees the
  holds it set, so it can find and lift them when the reason has passed.

What it does not: decide what a report contains or whether a hold counts;
the pure modules `broker.audit.access_report` and `broker.audit.holds` do.
Holds are markers appended to the log (it is never edited); this module
reads the log, checks who is asking, and appends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from broker.api.deps import ServicesDep
from broker.api.security import AuditAnyCaller, AuditOwnCaller, AuditReadCaller
from broker.audit.access_report import AccessReport, build_access_report
from broker.audit.entries import MAX_UNTRUSTED_CHARS
from broker.audit.holds import (
    HOLD,
    HOLD_LIFTED,
    active_holds,
    hold_entry,
    hold_history,
    hold_lifted_entry,
)
from broker.audit.log import AuditLog
from broker.audit.store import MAX_QUERY_LIMIT, AuditQuery, StoredEntry
from broker.cases.crypto import pseudonym
from broker.cases.requests import SUBJECT_REF
from broker.errors import ConflictError, NotFoundError
from broker.text import PrintableText

if TYPE_CHECKING:
    from broker.services import Services

router = APIRouter(tags=["audit"])

CASE_ID = r"^[A-Za-z0-9_-]{1,64}$"  # as the case endpoints and ExchangeRequest.case
LogIndex = Annotated[int, Path(ge=0, le=2**62)]


class CaseDataUnavailableError(NotFoundError):
    """No data key for the case: it never existed or its data was destroyed (R7)."""

    public_detail = "The case is unknown, or its personal data no longer exists."


class HoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # For the DPO: a ground or the provider's own reference, no personal data.
    # Bounded as every untrusted string in the log (entries.MAX_UNTRUSTED_CHARS).
    reason: PrintableText = Field(min_length=1, max_length=MAX_UNTRUSTED_CHARS)


# Check-then-append for holds is serialised within this process. Across
# broker processes two requests may still both append; the fold in
# broker.audit.holds keeps the first hold and ignores the second, so the
# log stays unambiguous either way.
_holds_lock = threading.Lock()


# --- reading the log -----------------------------------------------------------------


def _read_all(audit: AuditLog, query: Callable[[int], AuditQuery]) -> list[StoredEntry]:
    """Every entry a filter matches, paging with the cursor."""
    found: list[StoredEntry] = []
    cursor = -1
    while page := audit.entries(query(cursor)):
        found.extend(page)
        cursor = page[-1].index
        if len(page) < MAX_QUERY_LIMIT:
            break
    return found


def _with_decision(decision: str) -> Callable[[int], AuditQuery]:
    def query(cursor: int) -> AuditQuery:
        return AuditQuery(decision=decision, after_index=cursor, limit=MAX_QUERY_LIMIT)

    return query


def read_hold_markers(audit: AuditLog) -> list[StoredEntry]:
    """Every hold and hold_lifted marker in the log (the store indexes `decision`)."""
    found = [
        *_read_all(audit, _with_decision(HOLD)),
        *_read_all(audit, _with_decision(HOLD_LIFTED)),
    ]
    return sorted(found, key=lambda stored: stored.index)


def read_case_entries(audit: AuditLog, case_id: str) -> list[StoredEntry]:
    return _read_all(
        audit, lambda cursor: AuditQuery(case=case_id, after_index=cursor, limit=MAX_QUERY_LIMIT)
    )


def entry_at(audit: AuditLog, index: int) -> StoredEntry | None:
    found = audit.entries(AuditQuery(after_index=index - 1, limit=1))
    return found[0] if found and found[0].index == index else None


def gather_access_report(services: Services, *, case_id: str, subject_ref: str) -> AccessReport:
    """Read what the report needs and build it; CaseDataUnavailableError without a data key."""
    data_key = services.cases.data_key(case_id)
    if data_key is None:
        raise CaseDataUnavailableError(f"no data key for case {case_id!r}")
    # Entries first, markers second: a hold set in between is still applied.
    case_entries = read_case_entries(services.audit, case_id)
    markers = read_hold_markers(services.audit)
    held = active_holds(stored.entry for stored in (*case_entries, *markers))
    return build_access_report(
        (stored.entry for stored in case_entries),
        case_id=case_id,
        subject_ref=subject_ref,
        subject_pseudonym=pseudonym(data_key, subject_ref),
        held=held.keys(),
        convenant=services.convenant,
        now=services.clock.now(),
    )


def _provided_entry(services: Services, index: int, partner: str) -> StoredEntry:
    """The exchange entry at `index` if `partner` is its provider; else one uniform 404."""
    stored = entry_at(services.audit, index)
    provider = stored.entry.get("provider") if stored else None
    if (
        stored is None
        or stored.entry.get("kind") != "exchange"
        or not isinstance(provider, dict)
        or provider.get("partner") != partner
    ):
        # Absent, not an exchange, or someone else's: the same answer, so a
        # partner cannot probe which indexes exist or whom they concern.
        raise NotFoundError(f"no exchange entry {index} provided by {partner!r}")
    return stored


# --- endpoints -----------------------------------------------------------------------


@router.get("/v1/audit/subjects/{ref}")
def access_report(
    services: ServicesDep,
    caller: AuditReadCaller,
    ref: Annotated[str, Path(pattern=SUBJECT_REF)],
    case: Annotated[str, Query(pattern=CASE_ID)],
) -> dict[str, Any]:
    """The AVG art. 15 access report of subject `ref` in `case` (JSON)."""
    _ = caller
    return gather_access_report(services, case_id=case, subject_ref=ref).to_dict()


@router.post("/v1/audit/entries/{index}/hold", status_code=201)
def set_hold(
    index: LogIndex, body: HoldRequest, services: ServicesDep, caller: AuditOwnCaller
) -> JSONResponse:
    """Keep an exchange entry the caller provided out of access reports until lifted."""
    with _holds_lock:
        target = _provided_entry(services, index, caller.principal)
        holds = active_holds([target.entry, *(m.entry for m in read_hold_markers(services.audit))])
        if index in holds:
            raise ConflictError(f"entry {index} is already held")
        marker = hold_entry(
            time=services.clock.now(), entry=index, set_by=caller.principal, reason=body.reason
        )
        receipt = services.audit.record(marker)
    return JSONResponse(
        {
            "entry": index,
            "active": True,
            "set_by": marker["set_by"],
            "reason": marker["reason"],
            "set_at": marker["time"],
            "receipt": receipt.to_dict(),
        },
        status_code=201,
    )


@router.delete("/v1/audit/entries/{index}/hold")
def lift_hold(index: LogIndex, services: ServicesDep, caller: AuditOwnCaller) -> dict[str, Any]:
    """Lift the caller's hold on an exchange entry: it is in access reports again."""
    with _holds_lock:
        target = _provided_entry(services, index, caller.principal)
        holds = active_holds([target.entry, *(m.entry for m in read_hold_markers(services.audit))])
        held = holds.get(index)
        if held is None:
            raise ConflictError(f"entry {index} is not held")
        if held.set_by != caller.principal:
            # Unreachable while holds count only from the provider; kept so
            # that a later change there cannot let anyone lift another's hold.
            raise NotFoundError(f"the hold on entry {index} was set by another partner")
        marker = hold_lifted_entry(
            time=services.clock.now(), entry=index, lifted_by=caller.principal
        )
        receipt = services.audit.record(marker)
    return {
        "entry": index,
        "active": False,
        "lifted_by": marker["lifted_by"],
        "lifted_at": marker["time"],
        "receipt": receipt.to_dict(),
    }


@router.get("/v1/audit/holds")
def list_holds(services: ServicesDep, caller: AuditAnyCaller) -> dict[str, Any]:
    """Every hold with who set it: all for the DPO, a partner's own for `audit:own`."""
    markers = read_hold_markers(services.audit)
    targets = {m.entry.get("entry") for m in markers}
    found = (
        entry_at(services.audit, t)
        for t in sorted(t for t in targets if isinstance(t, int) and not isinstance(t, bool))
    )
    periods = hold_history(
        [*(s.entry for s in found if s is not None), *(m.entry for m in markers)]
    )
    if "audit:read" not in caller.scopes:
        periods = [p for p in periods if p.set_by == caller.principal]
    holds = []
    for period in periods:
        document = period.to_dict()
        partner = services.convenant.partner(period.set_by)
        document["set_by_name"] = partner.name if partner else None
        holds.append(document)
    return {"holds": holds}
