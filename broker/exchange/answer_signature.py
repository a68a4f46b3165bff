"""The broker's signature over what it disclosed to a requester (non-repudiation).

What it does: signs the answer of `POST /v1/exchanges` with the broker's key
as a detached JWS (RFC 7515 Appendix F, `typ` `kb-disclosure+jws`) over the
RFC 8785 canonical JSON of the answer body, sent as the response header
`Ketenbroker-Signature` (`sign_disclosure`); and lets a partner check such
a signature against the broker's published JWKS (`verify_disclosure`). The
format is the adapters' answer signature (`broker.adapter_protocol`), with
its own `typ` so that neither can be passed off as the other.

What is signed: every member of the answer body except `receipt`. The
receipt points at the audit entry that records this disclosure, and that
entry holds the digest of this very signature (`disclosure_signature_digest`),
so the signature cannot also cover the receipt without a cycle. Nothing is
lost: the receipt carries its own signed checkpoint, and its leaf hash binds
it to that entry, whose digest binds the entry to this signature. A
requester who keeps body, header and receipt can later prove what the
broker told it; the broker can prove, from the log, what it signed.

What it does not: any I/O, key loading, or clock (style.md §1). It does not
check the receipt (`broker.audit.offline.verify_receipt` does).

Errors: `DisclosureSignatureError` (a `TrustError`) for every failure, with
the expected-versus-got message; never a foreign exception.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import jwt

from broker.adapter_protocol import MAX_ANSWER_BYTES, MAX_ANSWER_SIGNATURE_BYTES
from broker.audit.offline import loads_strict
from broker.canonical import canonical_json, sha256_hex
from broker.errors import TrustError
from broker.keys import PublicKeySet, SigningKey, TrustedKey, keyset_from_jwks

DISCLOSURE_SIGNATURE_TYPE = "kb-disclosure+jws"
DISCLOSURE_SIGNATURE_HEADER = "Ketenbroker-Signature"
# Answer members the signature does not cover (see the module docstring).
UNSIGNED_MEMBERS = frozenset({"receipt"})

# Bounds on what a partner hands the verifier (style.md §14). A signature is
# a header and one signature, as an adapter's (adapter_protocol: 2 KiB). The
# body is a filtered adapter answer (at most MAX_ANSWER_BYTES) plus a few
# hundred bytes of exchange id, legal basis, withheld list and receipt; 64 KiB
# on top is far more than those members ever take.
MAX_DISCLOSURE_SIGNATURE_BYTES = MAX_ANSWER_SIGNATURE_BYTES
MAX_DISCLOSURE_BYTES = MAX_ANSWER_BYTES + 64 * 1024

# As for answer signatures: keys are pinned (RFC 8725 §3.10), no critical
# extensions, and the payload is always base64url (no RFC 7797 b64).
_FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c", "x5t", "x5t#S256", "crit", "b64")


class DisclosureSignatureError(TrustError):
    """A disclosure signature does not hold for the body it came with."""

    code = "disclosure_signature_invalid"
    public_detail = "The broker's signature over this answer does not verify."


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signed_payload(body: Mapping[str, Any]) -> bytes:
    """The bytes the signature covers: JCS of `body` without its unsigned members."""
    return canonical_json({k: v for k, v in body.items() if k not in UNSIGNED_MEMBERS})


def sign_disclosure(*, key: SigningKey, body: Mapping[str, Any]) -> str:
    """A detached JWS by the broker's `key` over the answer `body` (`receipt` aside)."""
    headers = {"kid": key.kid, "typ": DISCLOSURE_SIGNATURE_TYPE}
    compact = jwt.api_jws.encode(
        signed_payload(body), key.private_key, algorithm=key.alg, headers=headers
    )
    header_part, _, signature_part = compact.split(".")
    return f"{header_part}..{signature_part}"


def disclosure_signature_digest(signature: str) -> str:
    """What the audit entry records of a signature: SHA-256 of its ASCII form."""
    return "sha256:" + sha256_hex(signature.encode("ascii"))


def _pinned_key(signature: str, keys: PublicKeySet) -> TrustedKey:
    try:
        header = jwt.get_unverified_header(signature)
    except jwt.PyJWTError as e:
        raise DisclosureSignatureError(f"expected a JWS, got an unparsable header: {e}") from e
    present = sorted(name for name in _FORBIDDEN_HEADERS if name in header)
    if present:
        raise DisclosureSignatureError(
            f"expected no key-carrying or critical headers, got {present}"
        )
    if header.get("typ") != DISCLOSURE_SIGNATURE_TYPE:
        raise DisclosureSignatureError(
            f"expected typ {DISCLOSURE_SIGNATURE_TYPE!r}, got {header.get('typ')!r}"
        )
    trusted = keys.get(header.get("kid"))
    if trusted is None:
        raise DisclosureSignatureError(f"expected a kid of the broker, got {header.get('kid')!r}")
    # The algorithm comes from the pinned key, never from the token.
    if header.get("alg") != trusted.alg:
        raise DisclosureSignatureError(f"expected alg {trusted.alg!r}, got {header.get('alg')!r}")
    return trusted


def _body_document(body: bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    if len(body) > MAX_DISCLOSURE_BYTES:
        raise DisclosureSignatureError(
            f"expected a body of at most {MAX_DISCLOSURE_BYTES} bytes, got {len(body)}"
        )
    try:
        # One reading only: duplicate members, NaN and huge numbers refused.
        document = loads_strict(body)
    except ValueError as e:
        raise DisclosureSignatureError(f"expected a JSON body, got: {e}") from e
    if not isinstance(document, dict):
        raise DisclosureSignatureError(f"expected a JSON object, got {type(document).__name__}")
    return document


def verify_disclosure(
    body: bytes | Mapping[str, Any],
    *,
    signature: str,
    jwks: Mapping[str, Any] | PublicKeySet,
) -> None:
    """Check the broker's `signature` over an exchange answer; raise if it does not hold.

    `body` is the answer as received (its bytes, or the parsed object);
    `jwks` the broker's public keys (`/.well-known/jwks.json`, pinned by the
    partner). The payload is recomputed from the body (RFC 8785), so a
    changed value, a renamed or added member breaks the signature; the
    `receipt` member is not covered (see the module docstring).
    """
    if len(signature.encode("utf-8", "replace")) > MAX_DISCLOSURE_SIGNATURE_BYTES:
        raise DisclosureSignatureError(
            f"expected a signature of at most {MAX_DISCLOSURE_SIGNATURE_BYTES} bytes"
        )
    parts = signature.split(".")
    if len(parts) != 3 or parts[1] != "":
        raise DisclosureSignatureError("expected a detached JWS of the form header..signature")
    try:
        keys = jwks if isinstance(jwks, PublicKeySet) else keyset_from_jwks(jwks)
    except TrustError as e:
        raise DisclosureSignatureError(f"expected the broker's JWKS, got: {e}") from e
    trusted = _pinned_key(signature, keys)
    document = _body_document(body)
    try:
        payload = signed_payload(document)
    except (TypeError, ValueError) as e:  # JCS refuses NaN, infinities, non-JSON types
        raise DisclosureSignatureError(f"body is not canonicalisable JSON: {e}") from e
    try:
        jwt.api_jws.decode_complete(
            f"{parts[0]}.{_b64url(payload)}.{parts[2]}",
            key=trusted.public_key,
            algorithms=[trusted.alg],
            options={"verify_signature": True},
        )
    except jwt.PyJWTError as e:
        raise DisclosureSignatureError(
            f"disclosure signature rejected: {type(e).__name__}: {e}"
        ) from e
