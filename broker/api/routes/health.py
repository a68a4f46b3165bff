"""Liveness and readiness (contract.md, General): no token needed, no detail leaked.

`/readyz` asks every dependency through the app's `DependencyProbe`
(broker/dependency_health.py): in parallel and within a bound, so a hanging
backend makes the broker "not ready" in seconds instead of hanging the
orchestrator's probe, and the same answer sets `ketenbroker_dependency_up`.
"""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from broker.dependency_health import AUDIT, CACHE, CASE_STORE, POLICY, DependencyProbe

router = APIRouter(tags=["health"])

# The readiness report's names (unchanged since issue 1) for the probe's dependencies.
READINESS_CHECKS = {
    "policy_engine": POLICY,
    "audit_store": AUDIT,
    "replay_cache": CACHE,
    "case_register": CASE_STORE,
}


def dependency_probe(request: Request) -> DependencyProbe:
    return cast("DependencyProbe", request.app.state.dependency_probe)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    states = dependency_probe(request).probe()
    report = {
        name: "ok" if states[dependency] else "unavailable"
        for name, dependency in READINESS_CHECKS.items()
    }
    ready = all(state == "ok" for state in report.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": report},
        status_code=200 if ready else 503,
    )
