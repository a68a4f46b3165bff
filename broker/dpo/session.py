"""The DPO's browser session: how a DPoP-bound token becomes a dashboard session.

How the DPO authenticates (decided by the lead; docs/decisions.md "Who is
the DPO?"): like every client, with `private_key_jwt` at `/oauth/token`
(client `fg-lekstroom`, scope `audit:read`). Since issue 5 those tokens are
sender-constrained (RFC 9449): bound to a DPoP key the DPO's tool holds. A
browser cannot sign DPoP proofs (the pages run no script, by design), so
the dashboard cannot ask for a proof on every page. The binding is
therefore checked once, at login, and carried on by the broker:

1. `ketenbroker dpo login-code` gets a DPoP-bound token and signs, with the
   same DPoP key, a proof for `POST {issuer}/dpo/session` carrying the
   token's hash (`ath`) and the broker's current nonce. It prints both as
   one *login code*: the token, a space, the proof.
2. `POST /dpo/session` verifies the code (`verify_dpo_login`): the token as
   a Bearer token is verified (signature, issuer, audience, lifetime, role
   still held, `audit:read`), it must be DPoP-bound, and the proof must be
   signed by the bound key, for this method and URL, fresh
   (`LOGIN_PROOF_MAX_AGE_SECONDS`), with a live nonce. The route then spends
   the proof's `jti` in the replay cache (`spend_login_proof`), exactly once.
3. The cookie then holds not the token but a *session value* the broker
   seals itself (`DpoSessionSealer`): the principal, the token's expiry
   and a random id under an HMAC-SHA256 keyed with a secret derived from
   the broker's signing key (HKDF; every broker process derives the same).
   The session ends when the token would have, at most 300 s on. Every
   `/dpo` page opens the seal again and checks that the principal still
   holds `audit:read` in the convenant now.

So a stolen access token (from a log, a proxy, a clipboard) opens no
dashboard: without the DPoP key there is no proof, and a login code is
good once, for two minutes. A stolen cookie is what a stolen session
cookie always is, bounded by its five-minute life, and never usable at the
API (Path=/dpo; the API takes no cookie).

The cookie is
* `HttpOnly` (no script can read it; the pages carry no script anyway),
* `SameSite=Strict` (never sent on a request another site starts: the
  cross-site request forgery defence of the logout form),
* `Path=/dpo` (the API never sees it: API calls carry an Authorization header),
* `Max-Age` the token's remaining life, at most 300 s (contract.md),
* `Secure` whenever the broker's issuer URL is https.

`verify_dpo_token` is the pre-DPoP login (a bare token pasted, the token
itself as the cookie). It stays until the route switches to the three
steps above; it accepts a DPoP-bound token without a proof, which is no
worse than before but does not use the binding.

What it does not: keep sessions server-side, refresh them, or accept a
credential anywhere but the login form and the cookie (never in a URL,
which ends up in logs and browser history; RFC 6750 §2.3).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from broker.auth.dpop import (
    DpopNonces,
    ReplayedDpopProofError,
    derive_secret,
    replay_ttl_seconds,
    verify_dpop_proof,
)
from broker.auth.jose import MAX_JWT_BYTES
from broker.auth.replay import ReplayCache
from broker.auth.tokens import AccessClaims, verify_access_token
from broker.convenant import Convenant
from broker.errors import InsufficientScopeError, InvalidTokenError
from broker.keys import PublicKeySet, SigningKey

SESSION_COOKIE: Final = "ketenbroker_dpo"
COOKIE_PATH: Final = "/dpo"
SESSION_PATH: Final = "/dpo/session"
REQUIRED_SCOPE: Final = "audit:read"

# A person copies the login code from a terminal into a browser: two
# minutes instead of the API's 60 s (broker.auth.dpop.MAX_PROOF_AGE_SECONDS).
# The proof still needs the broker's nonce, so it cannot have been made
# long before, and is spent once (its jti remembered for 5 + 120 + 1 s).
LOGIN_PROOF_MAX_AGE_SECONDS: Final = 120
# Token, one blank, proof: two compact JWSs, each bounded like any JWT.
MAX_LOGIN_CODE_CHARS: Final = 2 * MAX_JWT_BYTES + 1

# The sealed session value: base64url("v1|principal|exp|sid") "." base64url(MAC).
# Principals match the convenant's identifier pattern (64 chars, no '|'); a
# NumericDate has at most 11 digits; sid is 22 chars: the whole stays < 256.
MAX_SESSION_VALUE_CHARS: Final = 256
_SESSION_VERSION: Final = "v1"
_SESSION_CONTEXT: Final = b"ketenbroker/dpo-session/v1\x00"
_B64URL = re.compile(r"[A-Za-z0-9_-]+")

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


@dataclass(frozen=True)
class DpoLogin:
    """A verified login code: the session it opens and the proof's jti still to spend."""

    session: DpoSession
    proof_jti: str


def verify_dpo_login(
    code: str | None,
    *,
    keys: PublicKeySet,
    issuer: str,
    convenant: Convenant,
    nonces: DpopNonces,
    now: datetime,
) -> DpoLogin:
    """Verify a login code: a DPoP-bound DPO token and a proof for `POST /dpo/session`.

    Raises InvalidTokenError (including InvalidDpopProofError and
    UseDpopNonceError) or NotAnAuditorError. The caller must then spend the
    proof (`spend_login_proof`) before it opens a session.
    """
    if not code:
        raise MissingSessionError("expected a login code, got none")
    if len(code) > MAX_LOGIN_CODE_CHARS:
        raise InvalidTokenError(
            f"expected a login code of at most {MAX_LOGIN_CODE_CHARS} chars, got {len(code)}"
        )
    parts = code.split()
    if len(parts) != 2:  # token and proof
        raise InvalidTokenError(
            f"expected a login code of an access token and a DPoP proof, got {len(parts)} parts"
        )
    token, proof = parts
    session, claims = _verify_token(token, keys=keys, issuer=issuer, convenant=convenant, now=now)
    if claims.jkt is None:
        raise InvalidTokenError(
            f"expected a DPoP-bound token for the dashboard, got a bearer token of"
            f" {claims.principal!r}"
        )
    verified = verify_dpop_proof(
        proof,
        method="POST",
        url=issuer.rstrip("/") + SESSION_PATH,
        access_token=token,
        expected_jkt=claims.jkt,
        nonces=nonces,
        now=now,
        max_age_seconds=LOGIN_PROOF_MAX_AGE_SECONDS,
    )
    return DpoLogin(session=session, proof_jti=verified.jti)


def spend_login_proof(login: DpoLogin, *, replay_cache: ReplayCache) -> None:
    """Remember the login proof's jti; raise ReplayedDpopProofError if it was used before.

    Keyed as the API keys proofs (`dpop:{principal}:{jti}`), for as long as
    the proof could verify: 5 s ahead + 120 s back + 1 = 126 s. Raises
    CacheUnavailableError when the cache cannot answer (no session then).
    """
    key = f"dpop:{login.session.principal}:{login.proof_jti}"
    ttl = replay_ttl_seconds(max_age_seconds=LOGIN_PROOF_MAX_AGE_SECONDS)
    if not replay_cache.store_jti(key, ttl_seconds=ttl):
        raise ReplayedDpopProofError(
            f"expected a fresh login code, got proof jti {login.proof_jti!r}"
            f" of {login.session.principal!r} already used"
        )


class DpoSessionSealer:
    """Seals and opens the dashboard's session value (the cookie), HMAC-SHA256.

    Stateless: the value says whose session it is and until when; the MAC
    says the broker wrote it. No session table, so every broker process
    accepts every other's sessions, and nothing outlives the token's expiry.
    """

    def __init__(self, *, key: bytes) -> None:
        if len(key) < 32:  # 256 bits, as HKDF derives it
            raise ValueError(f"expected a key of at least 32 bytes, got {len(key)}")
        self._key = key

    @classmethod
    def from_signing_key(cls, signing_key: SigningKey) -> DpoSessionSealer:
        return cls(key=derive_secret(signing_key, purpose=b"dpo-session/v1"))

    def seal(self, session: DpoSession) -> str:
        expires = int(session.expires_at.timestamp())
        sid = secrets.token_urlsafe(16)  # distinct values for distinct logins
        body = f"{_SESSION_VERSION}|{session.principal}|{expires}|{sid}".encode("ascii")
        return f"{_b64url(body)}.{_b64url(self._mac(body))}"

    def open(self, value: str | None, *, convenant: Convenant, now: datetime) -> DpoSession:
        """The session a cookie holds; raise InvalidTokenError or NotAnAuditorError."""
        if not value:
            raise MissingSessionError("expected a DPO session, got none")
        if len(value) > MAX_SESSION_VALUE_CHARS:
            raise InvalidTokenError(
                f"expected a session value of at most {MAX_SESSION_VALUE_CHARS} chars,"
                f" got {len(value)}"
            )
        encoded_body, _, encoded_mac = value.partition(".")
        body, mac = _b64url_decode(encoded_body), _b64url_decode(encoded_mac)
        if body is None or mac is None or not hmac.compare_digest(mac, self._mac(body)):
            # Never echoed: a cookie is a credential.
            raise InvalidTokenError("expected a session value sealed by this broker, got another")
        fields = body.decode("ascii").split("|")
        if len(fields) != 4 or fields[0] != _SESSION_VERSION or not fields[2].isdigit():
            raise InvalidTokenError(f"expected a {_SESSION_VERSION} session value, got another")
        principal, expires = fields[1], datetime.fromtimestamp(int(fields[2]), UTC)
        if REQUIRED_SCOPE not in convenant.scopes_for(principal):
            # Removed from the convenant, or no longer an auditor, since login.
            raise NotAnAuditorError(
                f"expected {principal!r} to hold {REQUIRED_SCOPE!r} in the convenant now,"
                f" got {sorted(convenant.scopes_for(principal))!r}",
                principal=principal,
            )
        session = DpoSession(principal=principal, expires_at=expires)
        if session.remaining_seconds(now=now) < 1:
            raise InvalidTokenError(f"expected a live session, got one that ended {expires}")
        return session

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, _SESSION_CONTEXT + body, hashlib.sha256).digest()


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
    return _verify_token(token, keys=keys, issuer=issuer, convenant=convenant, now=now)[0]


def _verify_token(
    token: str | None,
    *,
    keys: PublicKeySet,
    issuer: str,
    convenant: Convenant,
    now: datetime,
) -> tuple[DpoSession, AccessClaims]:
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
    return session, claims


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes | None:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
