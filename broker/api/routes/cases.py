"""The case register's endpoints (contract.md, Cases)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from broker.api.deps import ServicesDep
from broker.api.security import Caller, CasesReadCaller, CasesWriteCaller
from broker.cases.register import case_document
from broker.cases.requests import (
    AdmitPartnerRequest,
    ConsentRequest,
    CreateCaseRequest,
    EventRequest,
    TransitionRequest,
    UrgencyRequest,
)
from broker.ratelimit import enforce_rate_limits
from broker.services import Services

router = APIRouter(tags=["cases"])


def _limit_case_read(services: Services, caller: Caller, case_id: str) -> None:
    # Probing case ids is an abuse pattern (issue 5 §6): partner rate plus a
    # cap on distinct cases per hour. Raises RateLimitedError (429).
    enforce_rate_limits(
        limiter=services.rate_limiter,
        limits=services.rate_limits,
        caller_partner=caller.principal,
        acting_user=None,
        case=case_id,
        subject=None,
        now=services.clock.now(),
    )


@router.post("/v1/cases", status_code=201)
def create_case(
    body: CreateCaseRequest, services: ServicesDep, caller: CasesWriteCaller
) -> JSONResponse:
    case = services.cases.create(caller=caller.principal, request=body, now=services.clock.now())
    return JSONResponse(
        {"id": case.id, "status": case.status.value},
        status_code=201,
        headers={"Location": f"/v1/cases/{case.id}"},
    )


@router.get("/v1/cases/{case_id}")
def get_case(case_id: str, services: ServicesDep, caller: CasesReadCaller) -> dict[str, Any]:
    _limit_case_read(services, caller, case_id)
    case = services.cases.get(caller=caller.principal, case_id=case_id)
    return case_document(
        case, services.convenant, viewer=caller.principal, now=services.clock.now()
    )


@router.post("/v1/cases/{case_id}/partners")
def admit_partner(
    case_id: str,
    body: AdmitPartnerRequest,
    services: ServicesDep,
    caller: CasesWriteCaller,
) -> dict[str, Any]:
    now = services.clock.now()
    case = services.cases.admit(
        caller=caller.principal, case_id=case_id, partner=body.partner, now=now
    )
    return case_document(case, services.convenant, viewer=caller.principal, now=now)


@router.post("/v1/cases/{case_id}/consent")
def decide_consent(
    case_id: str,
    body: ConsentRequest,
    services: ServicesDep,
    caller: CasesWriteCaller,
) -> dict[str, Any]:
    now = services.clock.now()
    case = services.cases.decide_consent(
        caller=caller.principal, case_id=case_id, granted=body.decision == "granted", now=now
    )
    return {"case": case.id, "consent": case.consent.value}


@router.post("/v1/cases/{case_id}/transitions")
def transition(
    case_id: str,
    body: TransitionRequest,
    services: ServicesDep,
    caller: CasesWriteCaller,
) -> dict[str, Any]:
    case = services.cases.transition(
        caller=caller.principal, case_id=case_id, to=body.to, now=services.clock.now()
    )
    return {"case": case.id, "status": case.status.value}


@router.get("/v1/cases/{case_id}/status")
def case_status(case_id: str, services: ServicesDep, caller: CasesReadCaller) -> dict[str, Any]:
    _limit_case_read(services, caller, case_id)
    return services.cases.status_view(
        caller=caller.principal, case_id=case_id, now=services.clock.now()
    )


@router.post("/v1/cases/{case_id}/events")
def record_event(
    case_id: str,
    body: EventRequest,
    services: ServicesDep,
    caller: CasesWriteCaller,
) -> dict[str, Any]:
    now = services.clock.now()
    case = services.cases.record_event(
        caller=caller.principal, case_id=case_id, kind=body.event, now=now, date=body.date
    )
    return {"case": case.id, "events": [e.kind.value for e in case.events]}


@router.post("/v1/cases/{case_id}/urgency")
def mark_urgent(
    case_id: str,
    body: UrgencyRequest,
    services: ServicesDep,
    caller: CasesWriteCaller,
) -> dict[str, Any]:
    """Acute necessity (seed 004 §2): skips the admission criteria, flags every exchange."""
    case = services.cases.mark_urgent(
        caller=caller.principal,
        case_id=case_id,
        justification=body.justification,
        now=services.clock.now(),
    )
    return {"case": case.id, "urgent": True}
