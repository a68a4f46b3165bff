"""Verify a client assertion: the signed JWT a partner authenticates with.

What it does: checks one `private_key_jwt` client assertion (RFC 7523 §3)
against the keys pinned for the client it claims to be, the broker's
audiences and a `now` passed in, and returns a `VerifiedAssertion`, the only
way to obtain one (style.md §7).

What it does not: consult the replay cache, the convenant or the clock. It
is a pure function; `token_service` adds the replay check after this
succeeds, so an attacker's forged assertion cannot burn a genuine `jti`.

Why so strict: this is the only door to a token. Every RFC 7523 §3 "MUST"
is checked, plus the limits contract.md adds (`exp` at most five minutes
ahead, EdDSA or ES256 only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from broker.auth.jose import decode_jwt, verify_lifetime
from broker.errors import InvalidClientError
from broker.keys import PublicKeySet

# contract.md: an assertion's `exp` lies at most five minutes ahead.
MAX_ASSERTION_LIFETIME_SECONDS = 300

# A jti is a random identifier; 200 characters fit any UUID, ULID or
# base64url nonce, and bound what the replay cache stores per key.
MAX_JTI_CHARS = 200

# RFC 7523 §3: iss, sub, aud, exp (items 1-4) and jti (item 7, which we
# require so the replay check has something to hold); iat so that a token
# minted in the future is refused.
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti")


@dataclass(frozen=True)
class VerifiedAssertion:
    client_id: str
    jti: str
    expires_at: datetime


def verify_client_assertion(
    assertion: str,
    *,
    client_id: str,
    keys: PublicKeySet,
    audiences: frozenset[str],
    now: datetime,
) -> VerifiedAssertion:
    """Verify `assertion` as `client_id`'s, signed by one of `keys`, for one of `audiences`.

    Raises InvalidClientError with expected versus got on any failure.
    """
    if not audiences:
        # An empty audience set must not mean "any audience" (style.md §13).
        raise ValueError("expected at least one audience, got none")
    claims = decode_jwt(
        assertion,
        keys=keys,
        # RFC 7523 §3 items 1-2: iss and sub are both the client_id.
        issuer=client_id,
        subject=client_id,
        # Item 3: aud (a string or a list) names the issuer or the token
        # endpoint; compared exactly, so a look-alike URL does not match.
        audience=sorted(audiences),
        strict_aud=False,
        require=REQUIRED_CLAIMS,
        typ=None,
        error=InvalidClientError,
    )
    expires_at = verify_lifetime(
        claims,
        now=now,
        max_lifetime_seconds=MAX_ASSERTION_LIFETIME_SECONDS,
        error=InvalidClientError,
    )
    jti = claims["jti"]  # pyjwt checked it is a string (verify_jti)
    if not 1 <= len(jti) <= MAX_JTI_CHARS:
        raise InvalidClientError(f"expected a jti of 1 to {MAX_JTI_CHARS} chars, got {len(jti)}")
    return VerifiedAssertion(client_id=client_id, jti=jti, expires_at=expires_at)
