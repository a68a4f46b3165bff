"""Liveness and readiness (contract.md, General): no token needed, no detail leaked."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from broker.api.deps import ServicesDep
from broker.errors import KetenbrokerError

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(services: ServicesDep) -> JSONResponse:
    checks = {
        "policy_engine": services.policy.ping,
        "audit_store": services.audit.ping,
        "replay_cache": services.replay_cache.ping,
        "case_register": services.cases.ping,
    }
    report: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            report[name] = "ok"
        except KetenbrokerError:
            report[name] = "unavailable"
        except Exception:  # noqa: BLE001  # readiness must answer, whatever a probe raises
            report[name] = "unavailable"
    ready = all(state == "ok" for state in report.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": report},
        status_code=200 if ready else 503,
    )
