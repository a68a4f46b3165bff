"""The JWT discipline both verifiers share: bounds, header checks, signature, clock.

What it does: `decode_jwt` takes a compact JWS and the pinned keys of the one
principal that may have signed it, refuses anything oversized, any header
that names its own key or demands extensions, any algorithm outside the
allow-list, any `kid` that is not pinned; then lets pyjwt check the signature
and the identity claims with every option spelled out (style.md §17).
`verify_lifetime` checks `exp`, `iat` and `nbf` against a `now` passed in.
`unverified_header`, `b64url_decode_strict` and `signature_verifies` read a
header, read a segment and check a signature without pyjwt re-reading the
whole token (its per-character alphabet check made a detached signature over
a 3 KB answer cost twice the signature verification itself).

What it does not: decide which claims a token kind needs or what they mean;
`assertions` (RFC 7523) and `tokens` (RFC 9068) do that, and pick the error
class a failure raises. It never fetches a key (RFC 8725 §3.10).

Why one module: client assertions and access tokens face the same attacks
(alg confusion, key injection through the header, oversized input, clock
games); one copy of the defence keeps the two verifiers from drifting apart.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from jwt import exceptions as jwt_errors
from jwt.algorithms import get_default_algorithms

from broker.clock import rfc3339
from broker.errors import TrustError
from broker.keys import (
    ALLOWED_ALGORITHMS,
    Algorithm,
    PublicKey,
    PublicKeySet,
    TrustedKey,
    generate_signing_key,
)

# An EdDSA or ES256 compact JWS with our claims is well under 1 KiB. 8 KiB is
# the usual limit on one HTTP header line (nginx large_client_header_buffers,
# Apache LimitRequestFieldSize), so every genuine token fits every hop, and a
# bigger one is an attack on the base64 and JSON parsers: refused unparsed.
MAX_JWT_BYTES = 8 * 1024

# Clock skew tolerated between the partner's machine and the broker, both
# ways. Thirty seconds covers NTP-synchronised hosts with room to spare.
LEEWAY_SECONDS = 30

# Header parameters with which a token names its own verification key
# (RFC 7515 §4.1.2-4.1.6). Keys are pinned per principal; a token that tries
# to bring its own is refused outright rather than ignored (RFC 8725 §3.10).
KEY_CARRYING_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c"})

# Larger than any real NumericDate (year 2242); bounds datetime conversion.
MAX_NUMERIC_DATE = 2**33

# The base64url alphabet (RFC 4648 §5), checked in C: pyjwt checks it one
# character at a time in Python, which dominated verifying a 3 KB payload.
_B64URL_TEXT = re.compile(r"[A-Za-z0-9_-]*")

# pyjwt's algorithm objects hold no state; made once, not per verification.
_SIGNATURE_ALGORITHMS = get_default_algorithms()


def decode_jwt(
    token: str,
    *,
    keys: PublicKeySet,
    issuer: str,
    audience: str | Sequence[str],
    strict_aud: bool,
    subject: str | None,
    require: Sequence[str],
    typ: str | None,
    error: type[TrustError],
) -> dict[str, Any]:
    """Verify `token`'s header, signature and identity claims; return its claims.

    `keys` are the pinned keys of the one principal allowed to have signed
    the token. Time claims are not checked here: call `verify_lifetime`
    with the caller's `now`. Every failure raises `error` with a message
    saying expected versus got.
    """
    header = _read_header(token, typ=typ, error=error)
    alg: Algorithm = header["alg"]
    kid = header.get("kid")
    pinned: TrustedKey | None = keys.get(kid)
    if pinned is None or pinned.alg != alg:
        # Spend one signature verification anyway, so an unknown client or
        # key answers in the time a bad signature takes (style.md §18).
        _verify_with_decoy(token, alg)
        if pinned is None:
            raise error(f"expected a kid pinned for this principal, got {kid!r}")
        raise error(f"expected alg {pinned.alg!r} for kid {kid!r}, got {alg!r}")
    try:
        return jwt.decode(
            token,
            pinned.public_key,
            # The pinned key's algorithm, never one taken from the token
            # (RFC 8725 §3.1); the header's `alg` was compared with it above.
            algorithms=[pinned.alg],
            options={
                "verify_signature": True,
                # pyjwt reads the wall clock; `verify_lifetime` uses the
                # `now` passed in (style.md §5), so these three are ours.
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_iss": True,
                "verify_aud": True,
                "verify_sub": True,  # sub, when present, is a string (and equals `subject`)
                "verify_jti": True,
                "strict_aud": strict_aud,
                "require": list(require),
                "enforce_minimum_key_length": True,
            },
            issuer=issuer,
            audience=audience if isinstance(audience, str) else list(audience),
            subject=subject,
            # Inert while pyjwt's time checks are off; LEEWAY_SECONDS applies
            # in `verify_lifetime`. Zero, so turning them on cannot widen it.
            leeway=0,
        )
    except jwt_errors.InvalidSignatureError as e:
        raise error(
            f"expected a signature by pinned kid {kid!r}, got one that does not verify"
        ) from e
    except jwt_errors.InvalidIssuerError as e:
        got = _claim_for_message(token, "iss")
        raise error(f"expected iss {issuer!r}, got {got!r}") from e
    except jwt_errors.InvalidAudienceError as e:
        got = _claim_for_message(token, "aud")
        raise error(f"expected aud naming one of {audience!r}, got {got!r}") from e
    except jwt_errors.InvalidSubjectError as e:
        got = _claim_for_message(token, "sub")
        raise error(f"expected sub {subject!r}, got {got!r}") from e
    except jwt_errors.MissingRequiredClaimError as e:
        raise error(f"expected claim {e.claim!r}, got none") from e
    except jwt_errors.PyJWTError as e:
        raise error(f"expected a well-formed signed JWT, got {type(e).__name__}: {e}") from e


def verify_lifetime(
    claims: dict[str, Any],
    *,
    now: datetime,
    max_lifetime_seconds: int,
    error: type[TrustError],
) -> datetime:
    """Check `exp`, `iat` and (when present) `nbf` against `now`; return `exp`.

    Refused: expired; `exp` more than `max_lifetime_seconds` ahead (a long-
    lived token is a stolen token's best friend); `iat` or `nbf` in the
    future. Each allows LEEWAY_SECONDS of clock skew.
    """
    leeway = timedelta(seconds=LEEWAY_SECONDS)
    expires_at = _numeric_date(claims, "exp", error=error)
    issued_at = _numeric_date(claims, "iat", error=error)
    if expires_at <= now - leeway:
        raise error(f"expected exp after {rfc3339(now - leeway)}, got {rfc3339(expires_at)}")
    latest = now + timedelta(seconds=max_lifetime_seconds) + leeway
    if expires_at > latest:
        raise error(
            f"expected exp at most {max_lifetime_seconds} s (+{LEEWAY_SECONDS} s leeway) ahead,"
            f" by {rfc3339(latest)}, got {rfc3339(expires_at)}"
        )
    if issued_at > now + leeway:
        raise error(f"expected iat at most {rfc3339(now + leeway)}, got {rfc3339(issued_at)}")
    if "nbf" in claims:
        not_before = _numeric_date(claims, "nbf", error=error)
        if not_before > now + leeway:
            raise error(f"expected nbf at most {rfc3339(now + leeway)}, got {rfc3339(not_before)}")
    return expires_at


def b64url_decode_strict(segment: str) -> bytes | None:
    """The bytes of one base64url JWS segment, or None when it is not one.

    As strict as pyjwt's reading of a segment: the base64url alphabet only,
    at most two `=` of padding and only where the length needs them, and the
    one canonical spelling (no stray bits in the last character), so one
    signature has one text.
    """
    stripped = segment.rstrip("=")
    padding = len(segment) - len(stripped)
    if padding > 2 or (padding and len(segment) % 4 != 0) or len(stripped) % 4 == 1:
        return None
    if not _B64URL_TEXT.fullmatch(stripped):
        return None
    try:
        raw = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except binascii.Error:
        return None
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != stripped.encode("ascii"):
        return None
    return raw


def unverified_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, unverified; ValueError if it is not one.

    Reads only the header segment (three segments required): the payload and
    signature are read by the `jwt.decode` that must follow, which refuses
    what pyjwt refuses. Reading the header through pyjwt would decode the
    whole token twice per verification, each time checking the alphabet one
    character at a time in Python.
    """
    if token.count(".") != 2:
        raise ValueError(f"expected three segments, got {token.count('.') + 1}")
    raw = b64url_decode_strict(token.partition(".")[0])
    if raw is None:
        raise ValueError("expected a base64url header segment")
    try:
        # Invalid UTF-8 and invalid JSON are ValueErrors; nesting deeper than
        # the parser's stack is a RecursionError, refused the same way.
        header: object = json.loads(raw)
    except RecursionError as e:
        raise ValueError("expected a header object, got JSON nested too deeply") from e
    # pyjwt refuses a kid that is not a string too; the pinned-key lookup wants one.
    if isinstance(header, dict) and isinstance(header.get("kid", ""), str):
        return header
    raise ValueError(f"expected a header object with a string kid, got {type(header).__name__}")


def signature_verifies(
    signing_input: bytes, signature: bytes, *, key: PublicKey, alg: Algorithm
) -> bool:
    """Whether `signature` (JWS form: raw r||s for ES256) over `signing_input` verifies.

    `alg` must come from the pinned key, never from the token (RFC 8725
    §3.1). The same pyjwt algorithm code as `jwt.decode` uses, without
    re-parsing a token whose parts the caller has already checked.
    """
    if alg not in ALLOWED_ALGORITHMS:
        raise ValueError(f"expected alg in {ALLOWED_ALGORITHMS!r}, got {alg!r}")
    algorithm = _SIGNATURE_ALGORITHMS[alg]
    return bool(algorithm.verify(signing_input, algorithm.prepare_key(key), signature))


def _read_header(token: str, *, typ: str | None, error: type[TrustError]) -> dict[str, Any]:
    # A compact JWS is ASCII (base64url and dots), so chars count bytes.
    if not isinstance(token, str) or not token.isascii():
        raise error("expected a compact JWS in ASCII, got other characters")
    if len(token) > MAX_JWT_BYTES:
        raise error(f"expected at most {MAX_JWT_BYTES} bytes, got {len(token)}")
    try:
        header = unverified_header(token)
    except ValueError as e:
        raise error(f"expected a compact JWS, got one that does not parse: {e}") from e
    carried = sorted(KEY_CARRYING_HEADERS & header.keys())
    if carried:
        raise error(f"expected no key-carrying header parameters, got {carried!r}")
    if "crit" in header:
        # No extension is understood here, so none may be critical (RFC 7515 §4.1.11).
        raise error(f"expected no critical extension in the header, got crit={header['crit']!r}")
    if header.get("alg") not in ALLOWED_ALGORITHMS:
        raise error(f"expected alg in {ALLOWED_ALGORITHMS!r}, got {header.get('alg')!r}")
    if typ is not None and header.get("typ") != typ:
        raise error(f"expected typ {typ!r}, got {header.get('typ')!r}")
    return header


def _numeric_date(claims: dict[str, Any], name: str, *, error: type[TrustError]) -> datetime:
    value = claims.get(name)
    # bool is an int in Python; `"exp": true` is not a NumericDate (RFC 7519 §2).
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(f"expected {name} as a NumericDate, got {value!r}")
    if not math.isfinite(value) or not 0 <= value < MAX_NUMERIC_DATE:
        raise error(f"expected {name} between 0 and {MAX_NUMERIC_DATE}, got {value!r}")
    return datetime.fromtimestamp(value, UTC)


def _claim_for_message(token: str, name: str) -> Any:
    """A claim's value for an error message, read after pyjwt verified the signature."""
    payload = jwt.decode(token, options={"verify_signature": False})
    return payload.get(name)


@functools.cache
def _decoy_key(alg: Algorithm) -> PublicKey:
    # A key nobody holds: verifying against it always fails, at the cost of
    # a real verification with the same algorithm.
    return generate_signing_key(alg).public_key


def _verify_with_decoy(token: str, alg: Algorithm) -> None:
    # The outcome is discarded: the caller refuses the token whatever it is.
    with contextlib.suppress(jwt_errors.PyJWTError):
        jwt.decode(
            token,
            _decoy_key(alg),
            algorithms=[alg],
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_iss": False,
                "verify_aud": False,
                "verify_sub": False,
                "verify_jti": False,
                "require": [],
            },
        )
