"""The FastAPI application, built by `create_app(settings)` (never at import time).

Errors: every failure becomes an RFC 9457 problem document with a `code`.
The handler maps the cause (broker/errors.py) to a status, shows the fixed
public detail only, and records the refusal in the audit log. If even that
record cannot be written, the answer is a 503: a refusal that cannot be
logged is still a refusal, and nothing is disclosed either way. Every
problem sent is counted by its code for /metrics
(`broker.api.problems.refusal`).

Operations: the outermost middleware (`broker.api.access_log`) settles the
request's trace context and writes one log line per request; `/metrics`
and `/readyz` share one `DependencyProbe`, closed with the app.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from broker import __version__
from broker.api.access_log import AccessLog
from broker.api.body_guard import JsonBodyGuard
from broker.api.problems import note_refusal, refusal, with_problem_responses
from broker.api.routes import (
    audit,
    audit_subjects,
    cases,
    convenant,
    dpo,
    exchanges,
    health,
    metrics,
    oauth,
)
from broker.api.security import trust_error_handler
from broker.audit.entries import security_event
from broker.dependency_health import AUDIT, CACHE, CASE_STORE, POLICY, DependencyProbe
from broker.errors import (
    AdapterTrustError,
    BackendUnavailableError,
    ConflictError,
    InputError,
    InsufficientScopeError,
    InvalidTokenError,
    KetenbrokerError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    RefusalError,
    TrustError,
)
from broker.services import Services, build_services
from broker.settings import Settings
from broker.tracing import parse_traceparent

log = logging.getLogger("ketenbroker.api")


# Most specific first: the first class an error is an instance of decides.
STATUS_BY_CAUSE: tuple[tuple[type[KetenbrokerError], int], ...] = (
    (RateLimitedError, 429),  # RFC 6585 §4
    (InsufficientScopeError, 403),
    (AdapterTrustError, 502),  # the provider's answer did not verify: a bad gateway
    (TrustError, 401),
    (PayloadTooLargeError, 413),
    (NotFoundError, 404),
    (ConflictError, 409),
    (InputError, 400),
    (BackendUnavailableError, 503),
)


def status_for(error: KetenbrokerError) -> int:
    if isinstance(error, RefusalError):
        return error.status
    return next((status for cause, status in STATUS_BY_CAUSE if isinstance(error, cause)), 500)


def _route_of(request: Request) -> str:
    """The matched route's template: the raw path may carry attacker text (log injection)."""
    return str(getattr(request.scope.get("route"), "path", "unrouted"))


def _record_refusal(request: Request, code: str, detail: str) -> bool:
    """Log a refusal at the edge; False when the audit log cannot take it."""
    services: Services = request.app.state.services
    if getattr(request.state, "refusal_logged", False):
        return True
    principal = getattr(request.state, "principal", None)
    route = request.scope.get("route")
    # The route template, never the raw path: the path may carry attacker text.
    template = getattr(route, "path", "unrouted")
    try:
        services.audit.record(
            security_event(
                time=services.clock.now(),
                event=f"{request.method} {template}",
                code=code,
                principal=principal if isinstance(principal, str) else None,
                trace_id=parse_traceparent(request.headers.get("traceparent")).trace_id,
                detail=detail,
            )
        )
    except BackendUnavailableError:
        return False
    request.state.refusal_logged = True
    return True


# Every method some route of the broker serves; a 405 names those of its path.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> list[str]:
    """The methods the request's path serves (RFC 9110 §15.5.6), asked of the router itself."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]


def install_error_handlers(app: FastAPI) -> None:
    # Bearer-token refusals get RFC 6750 §3 challenges; they are logged by the
    # security dependency itself (broker/api/security.py), and counted here.
    def token_refusal(request: Request, error: Exception) -> Response:
        response = trust_error_handler(request, error)
        note_refusal(request, getattr(error, "code", "invalid_token"))
        return response

    app.add_exception_handler(InvalidTokenError, token_refusal)
    app.add_exception_handler(InsufficientScopeError, token_refusal)

    @app.exception_handler(KetenbrokerError)
    async def broker_error(request: Request, error: KetenbrokerError) -> JSONResponse:
        status = status_for(error)
        # Exchange refusals are logged by the pipeline itself, with full detail.
        already_logged = hasattr(error, "receipt")
        if not already_logged and not _record_refusal(request, error.code, str(error)):
            return refusal(
                request, 503, "audit_unavailable", "The audit log could not record this request."
            )
        headers = None
        if status == 401:
            headers = {"WWW-Authenticate": f'Bearer error="{error.code}"'}
        if isinstance(error, RateLimitedError):
            # RFC 9110 §10.2.3: delay-seconds, a whole number >= 1 (guard.py).
            headers = {"Retry-After": str(error.retry_after)}
        log.info(
            "refused %s %s: %s (%s)",
            request.method,
            _route_of(request),
            error.code,
            status,
            extra={"code": error.code, "status": status},
        )
        # A logged exchange refusal carries its receipt, like an answer does:
        # the requester can prove later that it was refused, and why.
        receipt = getattr(error, "receipt", None)
        extra = {"receipt": receipt.to_dict()} if receipt is not None else None
        return refusal(
            request, status, error.code, error.public_detail, headers=headers, extra=extra
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # Locations and error types only: never the submitted values (they may be personal data).
        problems = [
            {"loc": [str(part) for part in e.get("loc", ())], "type": str(e.get("type", ""))}
            for e in error.errors()
        ]
        if not _record_refusal(request, "invalid_request", f"validation failed at {problems[:5]}"):
            return refusal(
                request, 503, "audit_unavailable", "The audit log could not record this request."
            )
        return refusal(
            request,
            400,
            "invalid_request",
            "The request body or parameters are not valid.",
            extra={"errors": problems[:20]},
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        headers = dict(error.headers or {})
        if error.status_code == 405:
            # RFC 9110 §15.5.6: Allow names every method of the resource;
            # Starlette names only those of the first route that matched.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return refusal(
            request, error.status_code, code, "The request could not be served.", headers=headers
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, _error: Exception) -> JSONResponse:
        # Fail closed and say nothing about internals.
        log.exception("unexpected error on %s %s", request.method, _route_of(request))
        return refusal(request, 500, "internal_error", "The request could not be completed.")


def build_dependency_probe(services: Services) -> DependencyProbe:
    return DependencyProbe(
        pings={
            AUDIT: services.audit.ping,
            POLICY: services.policy.ping,
            CACHE: services.replay_cache.ping,
            CASE_STORE: services.cases.ping,
        },
        metrics=services.metrics,
        # The longest single ping's own bound: OPA's policy timeout; Redis
        # gives up after 1 s (services.build_redis_client).
        timeout_seconds=max(services.settings.policy_timeout_seconds, 1.0),
    )


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    owned = services is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.dependency_probe.close()
        if owned:
            app.state.services.close()

    app = FastAPI(
        title="Ketenbroker",
        version=__version__,
        description="Secure data exchange for the aanpak woonoverlast (contract v1).",
        lifespan=lifespan,
    )
    app.state.services = services or build_services(settings)
    app.state.metrics = app.state.services.metrics
    app.state.dependency_probe = build_dependency_probe(app.state.services)
    install_error_handlers(app)
    app.add_middleware(JsonBodyGuard)
    # Added last, so outermost: its trace id holds for everything inside.
    app.add_middleware(AccessLog)
    routers = (health, metrics, oauth, convenant, cases, exchanges, audit, audit_subjects, dpo)
    for module in routers:
        app.include_router(module.router)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_problem_responses(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    return app
