"""Access tokens on API calls: who is calling, with which key, and may they make this call.

What it does: `require_scope(scope)` (or `require_any_scope(*scopes)`) makes
a FastAPI dependency that reads exactly one `Authorization` header and

* for `DPoP <token>` (RFC 9449 §7.1), the default: verifies the token
  (`broker.auth.tokens`, RFC 9068 §4), requires it to be bound (`cnf.jkt`),
  and verifies the one `DPoP` header's proof for this request
  (`broker.auth.dpop`): `htm` is the method, `htu` the issuer's URL for this
  path (never the Host header, which a proxy may rewrite), `iat` fresh,
  `ath` the token's hash, the signing key the bound key, a live server
  nonce (§9); then stores the proof's `jti` once (§11.1);
* for `Bearer <token>` (RFC 6750 §2.1): only an unbound token of a
  principal the convenant marks `bearer_allowed`; every other principal is
  refused with a DPoP challenge, and a DPoP-bound token is never accepted
  as a bearer token (that would undo the binding);

then checks that the principal still holds the same role in the convenant
and that the token carries the scope, and returns a `Caller`. Every refusal
is recorded as a `security_event` in the audit log before the caller hears
of it, and `request.state.refusal_logged` is set so the app's error handler
does not record it twice. `trust_error_handler` renders refusals as problem
documents with RFC 9449 §7.1 / RFC 6750 §3 challenges, and a nonce
challenge with a fresh `DPoP-Nonce` (RFC 9449 §9).

What it does not: accept a token from the query string or a form body
(RFC 6750 §2.2-2.3 allow it; URLs end up in logs, proxies and browser
history), or decide anything beyond the scope: case membership and policy
come later. It assumes the broker is served at the root of its issuer URL,
as the metadata's `token_endpoint` does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.http import HTTPBase

from broker.api.deps import ServicesDep
from broker.api.problems import problem
from broker.audit.entries import security_event
from broker.auth.dpop import (
    DpopNonces,
    InvalidDpopProofError,
    ReplayedDpopProofError,
    UseDpopNonceError,
    replay_ttl_seconds,
    verify_dpop_proof,
)
from broker.auth.jose import MAX_JWT_BYTES
from broker.auth.tokens import AccessClaims, verify_access_token
from broker.convenant.model import SCOPES
from broker.errors import InsufficientScopeError, InvalidTokenError
from broker.keys import ALLOWED_ALGORITHMS
from broker.tracing import parse_traceparent

if TYPE_CHECKING:
    from broker.services import Services

# RFC 9449 §4.1 and §8.1: the proof's and the nonce's header fields.
DPOP_HEADER = "DPoP"
DPOP_NONCE_HEADER = "DPoP-Nonce"

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
# RFC 9449 §7.1 uses the same token68 syntax for the DPoP scheme.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

# RFC 9449 §7.1: the challenge names the proof algorithms accepted.
_ALGS = 'algs="{}"'.format(" ".join(ALLOWED_ALGORITHMS))

# Shown in the OpenAPI document; the headers are parsed below, not by these.
_DPOP_DOC = HTTPBase(
    scheme="DPoP",
    scheme_name="DPoP",
    auto_error=False,
    description="A DPoP-bound access token from POST /oauth/token (RFC 9449 §7.1), sent as"
    " `Authorization: DPoP <token>` with a `DPoP` proof header for this request, signed by"
    " the bound key, carrying `ath` and the server nonce from `DPoP-Nonce`.",
)
_BEARER_DOC = HTTPBearer(
    auto_error=False,
    scheme_name="BearerToken",
    bearerFormat="JWT",
    description="An unbound access token (RFC 6750, RFC 9068): only for partners the"
    " convenant marks bearer_allowed.",
)


class MissingTokenError(InvalidTokenError):
    """No credentials at all: RFC 6750 §3.1 says the challenge then names no error."""


class BearerNotAllowedError(InvalidTokenError):
    """A bearer token where the convenant requires DPoP: challenged with the DPoP scheme."""


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
        _dpop: Annotated[HTTPAuthorizationCredentials | None, Depends(_DPOP_DOC)],
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
        # A body the JSON gate refused (broker/api/body_guard.py) is refused
        # here, once we know who sent it, so the log names the partner.
        body_refusal = getattr(request.state, "body_refusal", None)
        if body_refusal is not None:
            raise body_refusal
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
    """Render InvalidTokenError (401) and InsufficientScopeError (403) with their challenges.

    Register it for those two classes. The body is the uniform problem
    document; the refusal's detail is already in the audit log. The scheme
    challenged is DPoP (RFC 9449 §7.1), except towards a caller whose bearer
    token was accepted (RFC 6750 §3). A nonce challenge carries a fresh
    `DPoP-Nonce` (RFC 9449 §9).
    """
    if isinstance(exc, InsufficientScopeError):
        scheme = getattr(request.state, "token_scheme", "DPoP")
        challenge = f'{scheme} error="insufficient_scope"'
        if isinstance(exc, ScopeRequiredError):
            challenge += f', scope="{exc.scope}"'
        return problem(403, exc.code, exc.public_detail, headers={"WWW-Authenticate": challenge})
    if isinstance(exc, MissingTokenError):
        headers = {"WWW-Authenticate": f"DPoP {_ALGS}"}
        return problem(401, exc.code, exc.public_detail, headers=headers)
    if isinstance(exc, UseDpopNonceError):
        services: Services = request.app.state.services
        headers = {
            "WWW-Authenticate": f'DPoP error="use_dpop_nonce", {_ALGS}',
            DPOP_NONCE_HEADER: dpop_nonces(request).issue(now=services.clock.now()),
        }
        return problem(401, exc.code, exc.public_detail, headers=headers)
    if isinstance(exc, InvalidTokenError):
        # invalid_token or invalid_dpop_proof (RFC 9449 §7.1, §12.2).
        headers = {"WWW-Authenticate": f'DPoP error="{exc.code}", {_ALGS}'}
        return problem(401, exc.code, exc.public_detail, headers=headers)
    raise exc  # not an access-token refusal: not ours to render


def dpop_nonces(request: Request) -> DpopNonces:
    """The broker's nonce issuer (RFC 9449 §8, §9), made once per app from the broker key.

    Derived, not random, so every broker process behind one issuer accepts
    every other's nonces (broker.auth.dpop, "Server nonces").
    """
    state = request.app.state
    nonces: DpopNonces | None = getattr(state, "dpop_nonces", None)
    if nonces is None:
        services: Services = state.services
        nonces = DpopNonces.from_signing_key(services.keys.signing_key("broker"))
        # Two racing first requests derive the same value; either may win.
        state.dpop_nonces = nonces
    return nonces


def _verified_claims(request: Request, services: Services) -> AccessClaims:
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
    scheme = scheme.lower()
    if scheme not in {"dpop", "bearer"}:
        raise InvalidTokenError(f"expected the DPoP or Bearer scheme, got {scheme[:20]!r}")
    if len(token) > MAX_JWT_BYTES:
        raise InvalidTokenError(
            f"expected a token of at most {MAX_JWT_BYTES} bytes, got {len(token)}"
        )
    # The token itself is never echoed: a mistyped header may hold a secret.
    if not _B64TOKEN.fullmatch(token):
        raise InvalidTokenError(
            f"expected one b64token after the {scheme!r} scheme, got {len(token)} chars"
        )
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
    if scheme == "bearer":
        _admit_bearer(claims, services)
        request.state.token_scheme = "Bearer"  # noqa: S105  # an auth scheme, not a secret
    else:
        _verify_proof(request, services, token=token, claims=claims)
    return claims


def _admit_bearer(claims: AccessClaims, services: Services) -> None:
    if claims.jkt is not None:
        # RFC 9449 §7.1: a DPoP-bound token goes with the DPoP scheme and a
        # proof; accepting it as a bearer token would undo the binding.
        raise InvalidTokenError(
            f"expected the DPoP scheme for a DPoP-bound token of {claims.principal!r}, got Bearer"
        )
    if not services.convenant.bearer_allowed(claims.principal):
        raise BearerNotAllowedError(
            f"expected a DPoP-bound token: the convenant allows {claims.principal!r}"
            " no bearer tokens, got Bearer"
        )


def _verify_proof(
    request: Request, services: Services, *, token: str, claims: AccessClaims
) -> None:
    if claims.jkt is None:
        # A bearer token dressed as DPoP has no key to check the proof against.
        raise InvalidTokenError(
            f"expected a DPoP-bound token with the DPoP scheme, got an unbound token of"
            f" {claims.principal!r}"
        )
    proofs = request.headers.getlist(DPOP_HEADER)
    if len(proofs) != 1:
        # RFC 9449 §4.3 step 1 (at most one) and §7.1 (the proof is required).
        raise InvalidDpopProofError(f"expected one DPoP header, got {len(proofs)}")
    proof = verify_dpop_proof(
        proofs[0],
        method=request.method,
        url=_request_url(request, services.settings.issuer),
        access_token=token,
        expected_jkt=claims.jkt,
        # Nonces required on every API call (RFC 9449 §9), always.
        nonces=dpop_nonces(request),
        now=services.clock.now(),
    )
    # RFC 9449 §11.1: a proof is good for one request. Stored only now, so a
    # forged proof cannot burn a genuine jti; keyed by the principal, as the
    # token endpoint keys it (token_service). The TTL outlives the proof's
    # acceptance window: iat within 60 s back and 5 s ahead means a proof
    # verified now verifies again for at most 65 s; 66 s is stored
    # (broker.auth.dpop.replay_ttl_seconds). An unreachable cache raises
    # CacheUnavailableError: the app answers 503 and nothing is served.
    key = f"dpop:{claims.principal}:{proof.jti}"
    if not services.replay_cache.store_jti(key, ttl_seconds=replay_ttl_seconds()):
        raise ReplayedDpopProofError(
            f"expected a fresh DPoP proof jti, got {proof.jti!r} already presented"
            f" with a token of {claims.principal!r}"
        )


def _request_url(request: Request, issuer: str) -> str:
    """The request's htu (RFC 9449 §4.3 step 9): the issuer's origin and path, this request's path.

    The path as received (`raw_path`, percent-encoding intact), without the
    query; never the Host header, which a proxy or the client chooses.
    """
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        path = raw.partition(b"?")[0].decode("latin-1")
    else:
        path = request.url.path
    return issuer.rstrip("/") + path


def _record_refusal(
    request: Request,
    services: Services,
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
