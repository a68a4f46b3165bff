"""The broker's access tokens: issue them, and verify them on every API call.

What it does: `AccessTokenIssuer` signs a JWT access token in the RFC 9068
profile (header `typ: at+jwt`; claims iss, sub, aud, client_id, scope, iat,
exp, jti, plus the broker's own `role` and `function`); a sender-constrained
token also carries `cnf: {"jkt": ...}`, the thumbprint of the client's DPoP
key (RFC 9449 §6.1), and is issued with token_type `DPoP` (RFC 9449 §5).
`verify_access_token` checks one against the broker's pinned keys and a
`now` passed in and returns `AccessClaims`, the only way to obtain them
(style.md §7); `AccessClaims.jkt` is None for a bearer token.

What it does not: decide who gets which scopes or whether a token must be
bound (`token_service` does, from the convenant), check a DPoP proof
(`broker.auth.dpop`), nor read HTTP headers (`broker.api.security` does).

Why JWTs and not opaque tokens: the broker is its own resource server, so
verifying needs no lookup; the five-minute lifetime bounds what a stolen
token is worth, since there is no revocation list.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import jwt

from broker.auth.jose import decode_jwt, verify_lifetime
from broker.convenant.model import SCOPES
from broker.errors import InvalidTokenError
from broker.keys import PublicKeySet, SigningKey
from broker.settings import MAX_ACCESS_TOKEN_TTL_SECONDS

# RFC 9068 §2.1: the header's typ; §4: resource servers MUST check it, which
# keeps a client assertion or an ID token from passing as an access token.
ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105  # a media type, not a secret

# RFC 9068 §2.2 makes these REQUIRED; `scope` (§2.2.3) and `role` are what
# the broker authorises on, so a token without them is refused, not defaulted.
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "role")

KNOWN_SCOPES = frozenset(SCOPES)

# RFC 9449 §5 token types: bound to a DPoP key, or a plain RFC 6750 bearer token.
DPOP_TOKEN_TYPE = "DPoP"  # noqa: S105  # a token type, not a secret
BEARER_TOKEN_TYPE = "Bearer"  # noqa: S105  # a token type, not a secret

# RFC 9449 §6.1: cnf.jkt is the base64url SHA-256 thumbprint (RFC 7638): 43 chars.
_JKT = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class AccessClaims:
    principal: str
    role: str
    scopes: frozenset[str]
    jti: str
    expires_at: datetime
    function: str | None
    # The DPoP key the token is bound to (RFC 9449 §6.1), None for a bearer token.
    jkt: str | None = None


@dataclass(frozen=True, kw_only=True)
class IssuedToken:
    """The RFC 6749 §5.1 answer of the token endpoint."""

    access_token: str
    token_type: str = BEARER_TOKEN_TYPE
    expires_in: int
    scope: str


class AccessTokenIssuer:
    def __init__(self, *, signing_key: SigningKey, issuer: str, ttl_seconds: int) -> None:
        if not 1 <= ttl_seconds <= MAX_ACCESS_TOKEN_TTL_SECONDS:
            raise ValueError(
                f"expected a ttl of 1 to {MAX_ACCESS_TOKEN_TTL_SECONDS} s, got {ttl_seconds!r}"
            )
        self._signing_key = signing_key
        self._issuer = issuer
        self._ttl_seconds = ttl_seconds

    def issue(
        self,
        *,
        principal: str,
        role: str,
        function: str | None,
        scopes: frozenset[str],
        now: datetime,
        jkt: str | None = None,
    ) -> IssuedToken:
        """Sign a token; with `jkt`, bound to that DPoP key (RFC 9449 §6.1)."""
        if not scopes:
            # A token that allows nothing is a bug upstream, not a token.
            raise ValueError("expected at least one scope, got none")
        unknown = sorted(scopes - KNOWN_SCOPES)
        if unknown:
            raise ValueError(f"expected scopes from {SCOPES!r}, got {unknown!r}")
        issued_at = int(now.timestamp())
        scope = " ".join(sorted(scopes))
        claims: dict[str, object] = {
            "iss": self._issuer,
            # RFC 9068 §2.2: for client credentials the subject is the client.
            "sub": principal,
            "aud": self._issuer,
            "client_id": principal,
            "role": role,
            "scope": scope,
            "iat": issued_at,
            "exp": issued_at + self._ttl_seconds,
            "jti": secrets.token_urlsafe(16),  # 128 random bits
        }
        if function is not None:
            claims["function"] = function
        if jkt is not None:
            if not _JKT.fullmatch(jkt):
                raise ValueError(f"expected a 43-char base64url jkt, got {jkt!r}")
            claims["cnf"] = {"jkt": jkt}
        token = jwt.encode(
            claims,
            self._signing_key.private_key,
            algorithm=self._signing_key.alg,
            headers={"typ": ACCESS_TOKEN_TYP, "kid": self._signing_key.kid},
        )
        return IssuedToken(
            access_token=token,
            token_type=DPOP_TOKEN_TYPE if jkt is not None else BEARER_TOKEN_TYPE,
            expires_in=self._ttl_seconds,
            scope=scope,
        )


def verify_access_token(
    token: str,
    *,
    keys: PublicKeySet,
    issuer: str,
    now: datetime,
) -> AccessClaims:
    """Verify a broker access token; raise InvalidTokenError with expected versus got."""
    claims = decode_jwt(
        token,
        keys=keys,
        issuer=issuer,
        # RFC 9068 §4: the audience is this resource server, exactly; we
        # issue a single string, so a list is refused too (strict).
        audience=issuer,
        strict_aud=True,
        subject=None,
        require=REQUIRED_CLAIMS,
        typ=ACCESS_TOKEN_TYP,
        error=InvalidTokenError,
    )
    expires_at = verify_lifetime(
        claims,
        now=now,
        max_lifetime_seconds=MAX_ACCESS_TOKEN_TTL_SECONDS,
        error=InvalidTokenError,
    )
    principal, client_id = claims["sub"], claims["client_id"]
    if principal != client_id:
        raise InvalidTokenError(f"expected client_id equal to sub {principal!r}, got {client_id!r}")
    role, function, scope = claims["role"], claims.get("function"), claims["scope"]
    if not isinstance(role, str):
        raise InvalidTokenError(f"expected role as a string, got {role!r}")
    if function is not None and not isinstance(function, str):
        raise InvalidTokenError(f"expected function as a string, got {function!r}")
    if not isinstance(scope, str):
        raise InvalidTokenError(f"expected scope as a string, got {scope!r}")
    scopes = frozenset(scope.split(" "))
    if not scopes <= KNOWN_SCOPES:
        raise InvalidTokenError(
            f"expected scopes from {SCOPES!r}, got {sorted(scopes - KNOWN_SCOPES)!r}"
        )
    return AccessClaims(
        principal=principal,
        role=role,
        scopes=scopes,
        jti=claims["jti"],
        expires_at=expires_at,
        function=function,
        jkt=_bound_key(claims),
    )


def _bound_key(claims: dict[str, object]) -> str | None:
    """The token's `cnf.jkt` (RFC 9449 §6.1), or None when it has no `cnf`.

    The broker issues `cnf` with exactly one member, `jkt`; anything else
    (another confirmation method, RFC 7800 §3) is not ours and is refused
    rather than ignored, which would turn a bound token into a bearer one.
    """
    if "cnf" not in claims:
        return None
    cnf = claims["cnf"]
    if not isinstance(cnf, dict) or set(cnf) != {"jkt"}:
        shown = sorted(cnf) if isinstance(cnf, dict) else type(cnf).__name__
        raise InvalidTokenError(f"expected cnf with jkt only, got {shown!r}")
    jkt = cnf["jkt"]
    if not isinstance(jkt, str) or not _JKT.fullmatch(jkt):
        raise InvalidTokenError(f"expected cnf.jkt as a 43-char base64url thumbprint, got {jkt!r}")
    return jkt
