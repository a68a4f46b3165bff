"""Bearer tokens on API calls: who is calling, and may they make this call.

What it does: `require_scope(scope)` (or `require_any_scope(*scopes)`) makes
a FastAPI dependency that reads exactly one `Authorization: Bearer <token>`
header (RFC 6750 §2.1), verifies the token (`broker.auth.tokens`, RFC 9068
§4), checks that its principal still holds the same role in the convenant
and that it carries the scope, and returns a `Caller`. Every refusal is
recorded as a `security_event` in the audit log before the caller hears of
it, and `request.state.refusal_logged` is set so the app's error handler
does not record it twice. `trust_error_handler` renders refusals as problem
documents with the RFC 6750 §3 challenge.

What it does not: accept a token from the query string or a form body
(RFC 6750 §2.2-2.3 allow it; URLs end up in logs, proxies and browser
history), accept DPoP-bound tokens (RFC 9449; not yet issued), or decide
anything beyond the scope: case membership and policy come later.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from broker.api.deps import ServicesDep
from broker.api.problems import problem
from broker.audit.entries import security_event
from broker.auth.jose import MAX_JWT_BYTES
from broker.auth.tokens import AccessClaims, verify_access_token
from broker.convenant.model import SCOPES
from broker.errors import InsufficientScopeError, InvalidTokenError
from broker.tracing import parse_traceparent

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

# Shown in the OpenAPI document; the header is parsed below, not by it.
_BEARER_DOC = HTTPBearer(
    auto_error=False,
    scheme_name="BearerToken",
    bearerFormat="JWT",
    description="An access token from POST /oauth/token (RFC 6750, RFC 9068).",
)


class MissingTokenError(InvalidTokenError):
    """No credentials at all: RFC 6750 §3.1 says the challenge then names no error."""


class ScopeRequiredError(InsufficientScopeError):
    """A valid token without the scope the call needs; `scope` goes in the challenge."""

    def __init__(self, message: str, *, scope: str) -> None:
        super().__init__(message)
        self.scope = scope


@dataclass(frozen=True)
class Caller:
    """The authenticated principal behind an API call, and what its token allows."""

    principal: str
    role: str
    function: str | None
    scopes: frozenset[str]
    token_jti: str


def require_scope(scope: str) -> Callable[..., Caller]:
    """A dependency admitting callers whose access token carries `scope`."""
    return require_any_scope(scope)


def require_any_scope(*scopes: str) -> Callable[..., Caller]:
    """A dependency admitting callers whose access token carries one of `scopes`."""
    if not scopes:
        # No scope named must not mean "no scope needed" (style.md §13).
        raise ValueError("expected at least one scope, got none")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"expected scopes from {SCOPES!r}, got {unknown!r}")
    accepted = frozenset(scopes)
    # RFC 6750 §3: the challenge's scope attribute is space-delimited.
    challenge_scope = " ".join(scope for scope in SCOPES if scope in accepted)

    def caller_with_scope(
        request: Request,
        services: ServicesDep,
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER_DOC)],
    ) -> Caller:
        try:
            claims = _verified_claims(request, services)
        except InvalidTokenError as e:
            _record_refusal(request, services, e, principal=None)
            raise
        request.state.principal = claims.principal
        if not accepted & claims.scopes:
            refusal = ScopeRequiredError(
                f"expected one of scopes {sorted(accepted)!r}, got {sorted(claims.scopes)!r}",
                scope=challenge_scope,
            )
            _record_refusal(request, services, refusal, principal=claims.principal)
            raise refusal
        return Caller(
            principal=claims.principal,
            role=claims.role,
            function=claims.function,
            scopes=claims.scopes,
            token_jti=claims.jti,
        )

    return caller_with_scope


CasesReadCaller = Annotated[Caller, Depends(require_scope("cases:read"))]
CasesWriteCaller = Annotated[Caller, Depends(require_scope("cases:write"))]
ExchangeCaller = Annotated[Caller, Depends(require_scope("exchange"))]
AuditOwnCaller = Annotated[Caller, Depends(require_scope("audit:own"))]
AuditReadCaller = Annotated[Caller, Depends(require_scope("audit:read"))]
# A partner reading its own entries or the DPO reading all of them.
AuditAnyCaller = Annotated[Caller, Depends(require_any_scope("audit:own", "audit:read"))]
# Any authenticated principal: every token carries at least one scope.
AnyCaller = Annotated[Caller, Depends(require_any_scope(*SCOPES))]


def trust_error_handler(request: Request, exc: Exception) -> Response:
    """Render InvalidTokenError (401) and InsufficientScopeError (403) with RFC 6750 §3 challenges.

    Register it for those two classes. The body is the uniform problem
    document; the refusal's detail is already in the audit log.
    """
    del request  # the signature Starlette's exception handlers have
    if isinstance(exc, InsufficientScopeError):
        challenge = 'Bearer error="insufficient_scope"'
        if isinstance(exc, ScopeRequiredError):
            challenge += f', scope="{exc.scope}"'
        return problem(403, exc.code, exc.public_detail, headers={"WWW-Authenticate": challenge})
    if isinstance(exc, MissingTokenError):
        return problem(401, exc.code, exc.public_detail, headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, InvalidTokenError):
        challenge = 'Bearer error="invalid_token"'
        return problem(401, exc.code, exc.public_detail, headers={"WWW-Authenticate": challenge})
    raise exc  # not a bearer-token refusal: not ours to render


def _verified_claims(request: Request, services: ServicesDep) -> AccessClaims:
    if "access_token" in request.query_params:
        raise InvalidTokenError(
            "expected the token in the Authorization header, got access_token in the query"
            " string (refused: RFC 6750 §2.3 tokens in URLs leak into logs)"
        )
    values = request.headers.getlist("authorization")
    if not values:
        raise MissingTokenError("expected an Authorization header, got none")
    if len(values) > 1:
        raise InvalidTokenError(f"expected one Authorization header, got {len(values)}")
    scheme, _, token = values[0].partition(" ")
    # RFC 9110 §11.1: auth schemes are case-insensitive.
    if scheme.lower() != "bearer":
        raise InvalidTokenError(f"expected the Bearer scheme, got {scheme[:20]!r}")
    if len(token) > MAX_JWT_BYTES:
        raise InvalidTokenError(
            f"expected a token of at most {MAX_JWT_BYTES} bytes, got {len(token)}"
        )
    # The token itself is never echoed: a mistyped header may hold a secret.
    if not _B64TOKEN.fullmatch(token):
        raise InvalidTokenError(f"expected one b64token after 'Bearer ', got {len(token)} chars")
    claims = verify_access_token(
        token,
        keys=services.keys.public_keyset("broker"),
        issuer=services.settings.issuer,
        now=services.clock.now(),
    )
    # The token speaks for the convenant at issue time; the convenant now
    # in force decides. A partner removed or moved to another role is
    # refused at once rather than when its token expires.
    role_now = services.convenant.role_of(claims.principal)
    if role_now != claims.role:
        raise InvalidTokenError(
            f"expected {claims.principal!r} to hold role {claims.role!r} in the convenant,"
            f" got {role_now!r}"
        )
    return claims


def _record_refusal(
    request: Request,
    services: ServicesDep,
    refusal: InvalidTokenError | InsufficientScopeError,
    *,
    principal: str | None,
) -> None:
    # security_event wants a principal the convenant knows, or None.
    known = principal if principal and services.convenant.role_of(principal) else None
    route = request.scope.get("route")
    # The route's template, not the URL: paths can carry case ids.
    path = getattr(route, "path", "unrouted")
    services.audit.record(
        security_event(
            time=services.clock.now(),
            event=f"{request.method} {path}",
            code=refusal.code,
            principal=known,
            trace_id=parse_traceparent(request.headers.get("traceparent")).trace_id,
            detail=str(refusal),
        )
    )
    # broker.api.app's handler records refusals it sees unless this is set.
    request.state.refusal_logged = True
