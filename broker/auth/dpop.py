"""DPoP (RFC 9449): verify a proof, name its key, and issue and check server nonces.

What it does:

* `verify_dpop_proof` checks one DPoP proof JWT against the request it came
  with (method, URL, access token), the key the token is bound to and a
  `now` passed in, following RFC 9449 §4.3 step by step, and returns a
  `VerifiedDpopProof`, the only way to obtain one (style.md §7).
* `key_thumbprint` gives a public key's RFC 7638 SHA-256 thumbprint, the
  `jkt` that an access token's `cnf` names (RFC 9449 §6.1).
* `DpopNonces` issues and checks the server nonces of RFC 9449 §8 (token
  endpoint) and §9 (resource server).
* `access_token_hash` is the `ath` of RFC 9449 §4.2.

What it does not: I/O. The replay check of a proof's `jti` (RFC 9449 §11.1)
needs the shared cache; the callers (`token_service`, `broker.api.security`,
`broker.dpo.session`'s route) store it after this succeeds, so a forged
proof never burns a genuine `jti`. Nor does it read HTTP headers.

Why so strict: a sender-constrained token is only worth its proof check. The
proof names its own key (the header `jwk`, the only place in the broker
where an embedded key is ever accepted, because that key is then compared
with the one the token is bound to), so every defence of `broker.auth.jose`
applies and more: the allow-list of algorithms (EdDSA, ES256; never `none`,
never HS*, RFC 9449 §4.3 step 5), the exact `typ` (step 4), a public key
only (step 7: a `jwk` carrying `d` is refused, it would mean the client
leaks its private key), no `crit`, no other key-carrying header, bounded
sizes.

Server nonces, the design (RFC 9449 §8, §9): stateless. A nonce is
base64url(issued_at ‖ random ‖ MAC), the MAC an HMAC-SHA256 (truncated to
128 bits) under a key derived from the broker's own signing key with HKDF
(`derive_secret`), so every broker process behind one issuer accepts the
nonces of every other without shared state, and a restart keeps them valid.
A nonce is good for `NONCE_LIFETIME_SECONDS`; it is not single-use (the
proof's `jti` is). What it buys: a proof must be made after the broker
handed out the nonce, so proofs pre-computed by someone who held the key
for a while (RFC 9449 §11.2) die within minutes. The lifetime, five
minutes, exceeds a client's token-renewal interval (about 270 s), and every
token response carries a fresh nonce, so an active client never meets the
`use_dpop_nonce` challenge after its first token request.

Error tree (all `InvalidTokenError`s, so the API edge answers 401)::

    InvalidTokenError                 (broker.errors)
    └── InvalidDpopProofError         missing, malformed or mismatched proof (§4.3, §7.1)
        ├── ReplayedDpopProofError    its jti was presented before (§11.1; raised by callers)
        └── UseDpopNonceError         no nonce, a stale one, or one not ours (§8, §9)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from jwt import exceptions as jwt_errors

from broker.auth.jose import MAX_JWT_BYTES, unverified_header
from broker.errors import InvalidTokenError
from broker.keys import (
    ALLOWED_ALGORITHMS,
    Algorithm,
    PublicKey,
    SigningKey,
    jwk_thumbprint,
    public_jwk_of,
)

# RFC 9449 §4.2: the proof's media type; §4.3 step 4: checked exactly.
DPOP_TYP = "dpop+jwt"

# A proof is a header line (the `DPoP` field). 8 KiB is what every hop lets
# through (broker.auth.jose.MAX_JWT_BYTES); a genuine proof, with an EC key,
# a long URL, `ath` and a nonce, stays under 1 KiB.
MAX_PROOF_BYTES = MAX_JWT_BYTES

# RFC 9449 §4.3 step 11 leaves the iat window to the server (§11.1 explains
# why short). Back: a proof is made just before its request is sent; 60 s
# covers the client's whole request timeout (10 s in the SDK) plus a retry
# on a nonce challenge, with room for a slow network. Forward: a proof from
# the future is what a pre-computing attacker makes (§11.2), and hosts of
# the convenant's partners run NTP; 5 s absorbs the small skew left.
MAX_PROOF_AGE_SECONDS = 60
MAX_PROOF_FUTURE_SECONDS = 5

# jti: a random identifier (RFC 9449 §4.2 asks for >= 96 bits); 200 chars fit
# any encoding of it and bound what the replay cache stores per key.
MAX_JTI_CHARS = 200
# htu: a URL without query (RFC 9449 §4.2); 2 KiB fits every path the API has.
MAX_HTU_CHARS = 2048
# htm: an HTTP method token (RFC 9110 §9.1); the longest standard one is 7.
MAX_HTM_CHARS = 16

# RFC 7517 §9.3, RFC 7518 §6.2.2 and §6.3.2: members that only a private or
# symmetric JWK carries. Any of them in the header means the client just
# published its secret; the proof proves nothing (RFC 9449 §4.3 step 7).
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# Header parameters that name a key other than by embedding it: refused,
# the embedded `jwk` is the proof's only key (RFC 8725 §3.10).
FOREIGN_KEY_HEADERS = frozenset({"jku", "x5u", "x5c", "x5t", "x5t#S256"})

# The JWK members that make a key usable, and which algorithm each key type
# signs with: the header's `alg` must be the one its key allows.
_KEY_TYPES: dict[tuple[str, str], Algorithm] = {
    ("OKP", "Ed25519"): "EdDSA",
    ("EC", "P-256"): "ES256",
}
# Both Ed25519 keys and P-256 coordinates are 32 bytes: 43 base64url chars.
_COORDINATE_BYTES = 32

# --- server nonces (RFC 9449 §8, §9) ----------------------------------------

# How long a nonce is accepted. RFC 9449 leaves it to the server; five
# minutes is longer than an SDK client keeps one token (renewal after
# 270 s, when a fresh nonce comes with the new token), short enough that a
# pre-computed proof is worthless soon after the key leaked.
NONCE_LIFETIME_SECONDS = 300
# Broker processes sharing the nonce key may disagree on the time by NTP's
# milliseconds; a nonce "from the future" beyond this was not made by us.
NONCE_FUTURE_SKEW_SECONDS = 5
# The nonce's own bytes: issued_at (8) ‖ random (8) ‖ MAC (16) = 32 bytes,
# 43 base64url characters, all within RFC 9449 §8.1's NQCHAR.
_NONCE_TIME_BYTES = 8
_NONCE_RANDOM_BYTES = 8
_NONCE_MAC_BYTES = 16  # 128-bit HMAC tag: forging one is 2^128 work
_NONCE_BYTES = _NONCE_TIME_BYTES + _NONCE_RANDOM_BYTES + _NONCE_MAC_BYTES
MAX_NONCE_CHARS = 64  # refused unparsed beyond this
# Domain separation: a MAC made for anything else never passes as a nonce.
_NONCE_CONTEXT = b"ketenbroker/dpop-nonce/v1\x00"
MIN_SECRET_BYTES = 32


class InvalidDpopProofError(InvalidTokenError):
    """The DPoP proof is missing, malformed, or does not fit this request (RFC 9449 §7.1)."""

    code = "invalid_dpop_proof"
    public_detail = "The DPoP proof is missing or invalid."


class ReplayedDpopProofError(InvalidDpopProofError):
    """A DPoP proof's `jti` was presented before (RFC 9449 §11.1)."""


class UseDpopNonceError(InvalidDpopProofError):
    """The proof lacks a server nonce, or carries a stale or foreign one (RFC 9449 §8, §9)."""

    code = "use_dpop_nonce"
    public_detail = "A DPoP proof with the server's current nonce is required (see DPoP-Nonce)."


@dataclass(frozen=True)
class VerifiedDpopProof:
    """A proof that holds for its request: whose key signed it, and its jti to store."""

    jkt: str
    jti: str
    issued_at: datetime


def replay_ttl_seconds(*, max_age_seconds: int = MAX_PROOF_AGE_SECONDS) -> int:
    """How long to remember a verified proof's jti so it can never verify twice.

    A proof with `iat` t is accepted while t - max_age <= now <= t + future
    skew, so from the moment it is verified (now >= t - future skew) it can
    verify again for at most future skew + max_age seconds. One second more
    and the cache outlives the window: 5 + 60 + 1 = 66 s for API calls.
    """
    return MAX_PROOF_FUTURE_SECONDS + max_age_seconds + 1


def key_thumbprint(public_key: PublicKey) -> str:
    """RFC 7638 SHA-256 thumbprint of a public key: the `jkt` of RFC 9449 §6.1."""
    return jwk_thumbprint(public_jwk_of(public_key))


def access_token_hash(access_token: str) -> str:
    """RFC 9449 §4.2 `ath`: base64url(SHA-256(ASCII of the access token)), unpadded."""
    return _b64url(hashlib.sha256(access_token.encode("ascii")).digest())


def derive_secret(signing_key: SigningKey, *, purpose: bytes) -> bytes:
    """A 256-bit secret for `purpose`, derived from the broker's private key (HKDF, RFC 5869).

    Every broker process holds the same key, so all derive the same secret;
    the `purpose` (HKDF `info`) keeps secrets for different uses independent.
    """
    if not purpose:
        raise ValueError("expected a purpose to derive a secret for, got none")
    material = signing_key.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ketenbroker/" + purpose)
    return hkdf.derive(material)


class DpopNonces:
    """Stateless server nonces: HMAC-SHA256 over the moment of issue (module docstring)."""

    def __init__(self, *, key: bytes, lifetime_seconds: int = NONCE_LIFETIME_SECONDS) -> None:
        if len(key) < MIN_SECRET_BYTES:
            raise ValueError(f"expected a key of at least {MIN_SECRET_BYTES} bytes, got {len(key)}")
        if not 1 <= lifetime_seconds <= 3600:
            raise ValueError(f"expected a lifetime of 1 to 3600 s, got {lifetime_seconds!r}")
        self._key = key
        self._lifetime_seconds = lifetime_seconds

    @classmethod
    def from_signing_key(cls, signing_key: SigningKey) -> DpopNonces:
        return cls(key=derive_secret(signing_key, purpose=b"dpop-nonce/v1"))

    def issue(self, *, now: datetime) -> str:
        body = struct.pack(">Q", int(now.timestamp())) + secrets.token_bytes(_NONCE_RANDOM_BYTES)
        return _b64url(body + self._mac(body))

    def verify(self, nonce: object, *, now: datetime) -> None:
        """Raise UseDpopNonceError unless `nonce` is one of ours, issued within the lifetime."""
        if nonce is None:
            raise UseDpopNonceError("expected a nonce claim (the server requires one), got none")
        if not isinstance(nonce, str) or not 1 <= len(nonce) <= MAX_NONCE_CHARS:
            size = len(nonce) if isinstance(nonce, str) else "no"
            raise UseDpopNonceError(
                f"expected a nonce string of 1 to {MAX_NONCE_CHARS} chars,"
                f" got {type(nonce).__name__} of {size} chars"
            )
        raw = _b64url_decode(nonce)
        if raw is None or len(raw) != _NONCE_BYTES:
            raise UseDpopNonceError("expected a nonce this broker issued, got another format")
        body, tag = raw[:-_NONCE_MAC_BYTES], raw[-_NONCE_MAC_BYTES:]
        if not hmac.compare_digest(tag, self._mac(body)):
            raise UseDpopNonceError(
                "expected a nonce this broker issued, got one that does not verify"
            )
        (issued,) = struct.unpack(">Q", body[:_NONCE_TIME_BYTES])
        age = now.timestamp() - issued
        if age < -NONCE_FUTURE_SKEW_SECONDS:
            raise UseDpopNonceError(f"expected a nonce issued by now, got one {-age:.0f} s ahead")
        if age >= self._lifetime_seconds:
            raise UseDpopNonceError(
                f"expected a nonce at most {self._lifetime_seconds} s old, got one {age:.0f} s old"
            )

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, _NONCE_CONTEXT + body, hashlib.sha256).digest()[
            :_NONCE_MAC_BYTES
        ]


def verify_dpop_proof(
    proof: str,
    *,
    method: str,
    url: str,
    access_token: str | None,
    expected_jkt: str | None,
    nonces: DpopNonces | None,
    now: datetime,
    max_age_seconds: int = MAX_PROOF_AGE_SECONDS,
) -> VerifiedDpopProof:
    """Verify `proof` for one request (RFC 9449 §4.3); raise InvalidDpopProofError if it fails.

    `method` and `url` are the request's, the URL built from the broker's
    issuer (never from a Host header) without query or fragment.
    `access_token` is the token presented with the proof (API calls: its
    hash must be the proof's `ath`), or None at the token endpoint.
    `expected_jkt` is the token's `cnf.jkt` (None at the token endpoint,
    where the proof's key is what the new token will be bound to).
    `nonces` None means this endpoint requires no nonce; otherwise the
    proof must carry a live one (UseDpopNonceError, checked last so that a
    defective proof is reported for its defect).
    """
    if not 1 <= max_age_seconds <= 600:
        raise ValueError(f"expected max_age_seconds of 1 to 600, got {max_age_seconds!r}")
    header = _read_header(proof)
    alg: Algorithm = header["alg"]
    jwk: dict[str, Any] = header["jwk"]
    public_key = _public_key(jwk, alg=alg)
    claims = _decode(proof, public_key=public_key, alg=alg)

    jti = claims["jti"]  # pyjwt checked it is a string (verify_jti)
    if not 1 <= len(jti) <= MAX_JTI_CHARS:
        raise InvalidDpopProofError(f"expected a jti of 1 to {MAX_JTI_CHARS} chars, got {len(jti)}")
    _verify_htm(claims.get("htm"), method=method)
    _verify_htu(claims.get("htu"), url=url)
    issued_at = _verify_iat(claims.get("iat"), now=now, max_age_seconds=max_age_seconds)
    if access_token is not None:
        # RFC 9449 §4.3 step 12 / §7.1: the proof is for this very token.
        ath = claims.get("ath")
        if not isinstance(ath, str):
            raise InvalidDpopProofError(f"expected an ath claim (a string), got {ath!r}")
        if not hmac.compare_digest(ath.encode(), access_token_hash(access_token).encode()):
            raise InvalidDpopProofError(
                "expected ath to be the hash of the presented token, got another"
            )
    # The thumbprint of the key as parsed, not of the header's text: one key,
    # one jkt, however its members were spelled (RFC 7638 §3.3).
    jkt = key_thumbprint(public_key)
    if expected_jkt is not None and not hmac.compare_digest(jkt.encode(), expected_jkt.encode()):
        # RFC 9449 §4.3 step 12 / §7.1: the key that signed the proof is the
        # key the token is bound to; otherwise the token is not the signer's.
        raise InvalidDpopProofError(
            f"expected a proof signed by the token's key (jkt {expected_jkt!r}), got jkt {jkt!r}"
        )
    if nonces is not None:
        nonces.verify(claims.get("nonce"), now=now)
    return VerifiedDpopProof(jkt=jkt, jti=jti, issued_at=issued_at)


def _read_header(proof: str) -> dict[str, Any]:
    # A compact JWS is ASCII (base64url and dots), so chars count bytes.
    if not isinstance(proof, str) or not proof.isascii():
        raise InvalidDpopProofError("expected a compact JWS in ASCII, got other characters")
    if len(proof) > MAX_PROOF_BYTES:
        raise InvalidDpopProofError(f"expected at most {MAX_PROOF_BYTES} bytes, got {len(proof)}")
    if proof.count(".") != 2:
        raise InvalidDpopProofError(
            f"expected a compact JWS (three parts), got {proof.count('.') + 1}"
        )
    try:
        header = unverified_header(proof)
    except ValueError as e:
        raise InvalidDpopProofError(
            f"expected a compact JWS, got one that does not parse: {e}"
        ) from e
    # RFC 9449 §4.3 step 4: exactly this typ, so no other JWT passes as a proof.
    if header.get("typ") != DPOP_TYP:
        raise InvalidDpopProofError(f"expected typ {DPOP_TYP!r}, got {header.get('typ')!r}")
    # Step 5: an asymmetric algorithm the broker supports; never none or HS*.
    if header.get("alg") not in ALLOWED_ALGORITHMS:
        raise InvalidDpopProofError(
            f"expected alg in {ALLOWED_ALGORITHMS!r}, got {header.get('alg')!r}"
        )
    if "crit" in header:
        # No extension is understood here, so none may be critical (RFC 7515 §4.1.11).
        raise InvalidDpopProofError(
            f"expected no critical extension in the header, got crit={header['crit']!r}"
        )
    foreign = sorted(FOREIGN_KEY_HEADERS & header.keys())
    if foreign:
        raise InvalidDpopProofError(f"expected the key in jwk only, got {foreign!r}")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        # Step 6: the signature verifies with the key in the `jwk` header, a JWK object.
        raise InvalidDpopProofError(
            f"expected a jwk object in the header, got {type(jwk).__name__}"
        )
    return header


def _public_key(jwk: Mapping[str, Any], *, alg: Algorithm) -> PublicKey:
    private = sorted(PRIVATE_JWK_MEMBERS & jwk.keys())
    if private:
        # Step 7: "the jwk JOSE Header Parameter does not contain a private key".
        raise InvalidDpopProofError(f"expected a public jwk, got private members {private!r}")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    key_alg = _KEY_TYPES.get((kty, crv)) if isinstance(kty, str) and isinstance(crv, str) else None
    if key_alg is None:
        raise InvalidDpopProofError(
            f"expected an Ed25519 or P-256 jwk, got kty={kty!r} crv={crv!r}"
        )
    if key_alg != alg:
        # The key decides the algorithm (RFC 8725 §3.1): no EdDSA header on an EC key.
        raise InvalidDpopProofError(f"expected alg {key_alg!r} for a {crv} key, got {alg!r}")
    x = _coordinate(jwk, "x")
    try:
        if key_alg == "EdDSA":
            return ed25519.Ed25519PublicKey.from_public_bytes(x)
        y = _coordinate(jwk, "y")
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
        )
        return numbers.public_key()  # raises ValueError for a point off the curve
    except ValueError as e:
        raise InvalidDpopProofError(f"expected a valid {crv} public key, got {e}") from e


def _coordinate(jwk: Mapping[str, Any], name: str) -> bytes:
    value = jwk.get(name)
    raw = _b64url_decode(value) if isinstance(value, str) and len(value) <= 64 else None
    if raw is None or len(raw) != _COORDINATE_BYTES:
        raise InvalidDpopProofError(
            f"expected jwk member {name!r} as {_COORDINATE_BYTES} base64url bytes,"
            f" got {value!r:.80}"
        )
    return raw


def _decode(proof: str, *, public_key: PublicKey, alg: Algorithm) -> dict[str, Any]:
    try:
        return jwt.decode(
            proof,
            public_key,
            # The algorithm the embedded key allows, never one read elsewhere.
            algorithms=[alg],
            options={
                "verify_signature": True,
                # A proof has no exp, aud, iss or sub (RFC 9449 §4.2); iat is
                # checked against the `now` passed in (_verify_iat).
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_iss": False,
                "verify_aud": False,
                "verify_sub": False,
                "verify_jti": True,
                "require": ["jti", "htm", "htu", "iat"],  # RFC 9449 §4.2, all REQUIRED
                "enforce_minimum_key_length": True,
            },
            leeway=0,
        )
    except jwt_errors.InvalidSignatureError as e:
        raise InvalidDpopProofError(
            "expected a signature by the embedded jwk, got one that does not verify"
        ) from e
    except jwt_errors.MissingRequiredClaimError as e:
        raise InvalidDpopProofError(f"expected claim {e.claim!r}, got none") from e
    except jwt_errors.PyJWTError as e:
        raise InvalidDpopProofError(
            f"expected a well-formed signed JWT, got {type(e).__name__}: {e}"
        ) from e


def _verify_htm(htm: object, *, method: str) -> None:
    # RFC 9449 §4.3 step 8; methods are case-sensitive (RFC 9110 §9.1).
    if not isinstance(htm, str) or len(htm) > MAX_HTM_CHARS or htm != method:
        shown = htm if isinstance(htm, str) and len(htm) <= MAX_HTM_CHARS else type(htm).__name__
        raise InvalidDpopProofError(f"expected htm {method!r}, got {shown!r}")


def _verify_htu(htu: object, *, url: str) -> None:
    # RFC 9449 §4.3 step 9: htu is the request's URI without query and
    # fragment, compared after RFC 3986 §6.2.2-6.2.3 normalisation. A proof
    # whose htu carries a query or fragment is refused: §4.2 says it has none.
    if not isinstance(htu, str) or not 1 <= len(htu) <= MAX_HTU_CHARS:
        raise InvalidDpopProofError(f"expected htu as a URL of at most {MAX_HTU_CHARS} chars")
    try:
        got = _normalised(htu)
    except ValueError as e:
        raise InvalidDpopProofError(f"expected htu as an absolute URL, got {htu!r:.200}") from e
    if got is None:
        raise InvalidDpopProofError(
            f"expected htu without query, fragment or user info, got {htu!r:.200}"
        )
    expected = _normalised(url)
    if expected is None:
        raise ValueError(f"expected the request URL without query or fragment, got {url!r}")
    if got != expected:
        raise InvalidDpopProofError(f"expected htu {url!r}, got {htu!r:.200}")


_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _normalised(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path) after RFC 3986 §6.2.2-6.2.3; None if it has a query etc.

    Raises ValueError when `url` is not an absolute http(s) URL with a host.
    """
    # Checked on the text: urlsplit forgets an empty query ("/p?").
    if "?" in url or "#" in url:
        return None
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        raise ValueError(f"expected an http(s) URL with a host, got scheme {scheme!r}")
    port = parts.port if parts.port is not None else _DEFAULT_PORTS[scheme]
    return scheme, host, port, _normalised_path(parts.path or "/")


def _normalised_path(path: str) -> str:
    """Percent-encoding normalised (RFC 3986 §6.2.2.1-2): upper-case hex, unreserved decoded."""
    out: list[str] = []
    i = 0
    while i < len(path):
        char = path[i]
        if char == "%" and _is_hex(path[i + 1 : i + 3]):
            byte = int(path[i + 1 : i + 3], 16)
            out.append(chr(byte) if byte in _UNRESERVED else "%" + path[i + 1 : i + 3].upper())
            i += 3
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _is_hex(text: str) -> bool:
    return len(text) == 2 and all(c in "0123456789abcdefABCDEF" for c in text)


def _verify_iat(iat: object, *, now: datetime, max_age_seconds: int) -> datetime:
    # bool is an int in Python; `"iat": true` is not a NumericDate (RFC 7519 §2).
    if isinstance(iat, bool) or not isinstance(iat, int | float) or not math.isfinite(iat):
        raise InvalidDpopProofError(f"expected iat as a NumericDate, got {iat!r}")
    age = now.timestamp() - iat
    if age > max_age_seconds:
        raise InvalidDpopProofError(
            f"expected iat at most {max_age_seconds} s ago, got one {age:.0f} s ago"
        )
    if age < -MAX_PROOF_FUTURE_SECONDS:
        raise InvalidDpopProofError(
            f"expected iat at most {MAX_PROOF_FUTURE_SECONDS} s ahead, got one {-age:.0f} s ahead"
        )
    return datetime.fromtimestamp(iat, UTC)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_B64URL_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _b64url_decode(text: str) -> bytes | None:
    """Strict unpadded base64url (RFC 7515 §2), or None: no padding, no other characters."""
    if not set(text) <= _B64URL_ALPHABET or len(text) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
