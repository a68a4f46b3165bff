"""The DPO's browser session: an access token held in a cookie, verified on every request.

How the DPO authenticates (decided by the lead; docs/decisions.md "Who is
the DPO?"): like every client, with `private_key_jwt` at `/oauth/token`
(client `fg-lekstroom`, scope `audit:read`). `ketenbroker dpo token` prints
such an access token, made with the DPO's own key from the key folder. The
page `GET /dpo/login` takes it in a form; `POST /dpo/session` verifies it
(`verify_dpo_token`) and puts it in a cookie that is

* `HttpOnly` (no script can read it; the pages carry no script anyway),
* `SameSite=Strict` (never sent on a request another site starts: the
  cross-site request forgery defence of the logout form),
* `Path=/dpo` (the API never sees it: API calls carry a Bearer header),
* `Max-Age` the token's remaining life, at most 300 s (contract.md), so the
  session dies with its token and there is no session state in the broker,
* `Secure` whenever the broker's issuer URL is https.

Every `/dpo` page verifies the cookie again, exactly as `broker.api.security`
verifies a Bearer token (signature, issuer, audience, lifetime, the role
still held in the convenant now) and requires `audit:read`.

What it does not: keep sessions server-side, refresh tokens, or accept the
token anywhere but the login form and the cookie (never in a URL, which
ends up in logs and browser history; RFC 6750 §2.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from broker.auth.jose import MAX_JWT_BYTES
from broker.auth.tokens import verify_access_token
from broker.convenant import Convenant
from broker.errors import InsufficientScopeError, InvalidTokenError
from broker.keys import PublicKeySet

SESSION_COOKIE: Final = "ketenbroker_dpo"
COOKIE_PATH: Final = "/dpo"
REQUIRED_SCOPE: Final = "audit:read"

# A compact JWS: three base64url parts. Anything else is refused before parsing.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

# Every /dpo answer carries these. The pages need no script, so none may run
# (script-src 'none'); the style sheet is served by the broker itself
# (/dpo/static/dpo.css), so style-src needs no 'unsafe-inline'.
CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'self'",
        "script-src 'none'",
        "object-src 'none'",
        "style-src 'self'",
        "img-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
SECURITY_HEADERS: Final = {
    "Cache-Control": "no-store",  # audit data stays out of every cache (RFC 9111 §5.2.2.5)
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # no clickjacking; frame-ancestors for older browsers
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # search URLs name cases and pseudonyms
}


class MissingSessionError(InvalidTokenError):
    """No session cookie: the browser never logged in, or the cookie ran out."""


class NotAnAuditorError(InsufficientScopeError):
    """A valid broker token without `audit:read`; `principal` says whose, for the log."""

    def __init__(self, message: str, *, principal: str) -> None:
        super().__init__(message)
        self.principal = principal


@dataclass(frozen=True)
class DpoSession:
    """A verified DPO session: who, and until when."""

    principal: str
    expires_at: datetime

    def remaining_seconds(self, *, now: datetime) -> int:
        return max(0, int((self.expires_at - now).total_seconds()))


def verify_dpo_token(
    token: str | None,
    *,
    keys: PublicKeySet,
    issuer: str,
    convenant: Convenant,
    now: datetime,
) -> DpoSession:
    """Verify a DPO access token from the login form or the cookie.

    Raises InvalidTokenError (missing, malformed, bad signature, expired,
    role changed) or NotAnAuditorError, an InsufficientScopeError (a valid
    token without `audit:read`, such as a partner's `audit:own`).
    """
    if not token:
        raise MissingSessionError("expected a DPO session, got none")
    if len(token) > MAX_JWT_BYTES:
        raise InvalidTokenError(
            f"expected a token of at most {MAX_JWT_BYTES} bytes, got {len(token)}"
        )
    # The token itself is never echoed: it is a credential.
    if not _COMPACT_JWS.fullmatch(token):
        raise InvalidTokenError(f"expected a compact JWS, got {len(token)} other characters")
    claims = verify_access_token(token, keys=keys, issuer=issuer, now=now)
    role_now = convenant.role_of(claims.principal)
    if role_now != claims.role:
        raise InvalidTokenError(
            f"expected {claims.principal!r} to hold role {claims.role!r} in the convenant,"
            f" got {role_now!r}"
        )
    if REQUIRED_SCOPE not in claims.scopes:
        raise NotAnAuditorError(
            f"expected scope {REQUIRED_SCOPE!r} for the DPO dashboard,"
            f" got {sorted(claims.scopes)!r}",
            principal=claims.principal,
        )
    session = DpoSession(principal=claims.principal, expires_at=claims.expires_at)
    if session.remaining_seconds(now=now) < 1:
        raise InvalidTokenError("expected a token with at least a second left, got less")
    return session
