"""The broker's signature over what it disclosed (broker/exchange/answer_signature.py), pure.

A requester must be able to prove later what the broker told it, and nobody
(the requester included) may change a word of it and keep the signature.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from broker.adapter_protocol import sign_answer
from broker.exchange.answer_signature import (
    DISCLOSURE_SIGNATURE_TYPE,
    MAX_DISCLOSURE_BYTES,
    DisclosureSignatureError,
    disclosure_signature_digest,
    sign_disclosure,
    verify_disclosure,
)
from broker.keys import KeyStore, SigningKey, generate_signing_key

BODY: dict[str, Any] = {
    "exchange": "ex_0123456789abcdef0123456789abcdef",
    "decision": "partial",
    "data": {"aantal_meldingen": 7, "laatste_melding": "2026-10-30", "politie_inzet": True},
    "withheld": [{"field": "meldingen", "reason": "Vrije tekst met bijzondere gegevens."}],
    "legal_basis": {"law": "Wet politiegegevens", "article": "art. 19"},
    "policy_version": "sha256:abc",
    "receipt": {"log_index": 41, "leaf_hash": "00" * 32, "checkpoint": {"size": 42}},
}


@pytest.fixture(scope="module")
def broker_key(keystore: KeyStore) -> SigningKey:
    return keystore.signing_key("broker")


@pytest.fixture(scope="module")
def jwks(keystore: KeyStore) -> dict[str, Any]:
    return keystore.public_keyset("broker").to_jwks()


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_signed_answer_verifies_as_bytes_and_as_object(
    broker_key: SigningKey, jwks: dict[str, Any]
) -> None:
    signature = sign_disclosure(key=broker_key, body=BODY)
    _, empty, _ = signature.split(".")
    assert empty == "", "detached: the body travels once, in the response"
    assert jwt.get_unverified_header(signature)["typ"] == DISCLOSURE_SIGNATURE_TYPE
    verify_disclosure(BODY, signature=signature, jwks=jwks)
    # Member order and whitespace are the serialiser's business, not the signature's.
    verify_disclosure(json.dumps(BODY, indent=2).encode(), signature=signature, jwks=jwks)
    assert disclosure_signature_digest(signature).startswith("sha256:")


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        target = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _drop(path: tuple[str, ...]) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        target = body
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


TAMPERINGS = [
    # a disclosed value changed
    _set(("data", "aantal_meldingen"), 0),
    # a field added that was never disclosed
    _set(("data", "strafrechtelijke_antecedenten"), True),
    # a disclosed field removed ("the broker never told us that")
    _drop(("data", "politie_inzet")),
    # the withheld notice removed
    _set(("withheld",), []),
    # the decision upgraded
    _set(("decision",), "permit"),
    # another exchange claimed
    _set(("exchange",), "ex_ffffffffffffffffffffffffffffffff"),
    # another legal basis claimed
    _set(("legal_basis", "article"), "art. 16"),
    # a member added at the top
    _set(("requester",), "gemeente-lekstroom"),
    # a value's type changed, same text
    _set(("data", "aantal_meldingen"), "7"),
]


@pytest.mark.parametrize("tamper", TAMPERINGS)
def test_tampered_answer_fails(
    broker_key: SigningKey, jwks: dict[str, Any], tamper: Callable[[dict[str, Any]], None]
) -> None:
    signature = sign_disclosure(key=broker_key, body=BODY)
    changed = copy.deepcopy(BODY)
    tamper(changed)
    with pytest.raises(DisclosureSignatureError):
        verify_disclosure(changed, signature=signature, jwks=jwks)


def test_receipt_is_outside_the_signature(broker_key: SigningKey, jwks: dict[str, Any]) -> None:
    """The entry behind the receipt holds the signature's digest; the receipt proves itself."""
    signature = sign_disclosure(
        key=broker_key, body={k: v for k, v in BODY.items() if k != "receipt"}
    )
    verify_disclosure(BODY, signature=signature, jwks=jwks)


def _forged_header(signature: str, **changes: Any) -> str:
    header = jwt.get_unverified_header(signature)
    header.update(changes)
    _, _, sig = signature.split(".")
    return f"{_b64(header)}..{sig}"


def test_signature_of_another_key_fails(jwks: dict[str, Any]) -> None:
    stranger = generate_signing_key("EdDSA")
    with pytest.raises(DisclosureSignatureError, match="kid"):
        verify_disclosure(BODY, signature=sign_disclosure(key=stranger, body=BODY), jwks=jwks)
    # Even under the broker's kid, the stranger's signature does not hold.
    impostor = SigningKey(
        kid=jwks["keys"][0]["kid"], alg=stranger.alg, private_key=stranger.private_key
    )
    with pytest.raises(DisclosureSignatureError, match="rejected"):
        verify_disclosure(BODY, signature=sign_disclosure(key=impostor, body=BODY), jwks=jwks)


def test_adapter_answer_signature_is_not_a_disclosure_signature(
    broker_key: SigningKey, jwks: dict[str, Any]
) -> None:
    # Same key, same format, other typ: one message cannot pass as the other.
    signature = sign_answer(key=broker_key, answer=BODY)
    with pytest.raises(DisclosureSignatureError, match="typ"):
        verify_disclosure(BODY, signature=signature, jwks=jwks)


HEADER_ATTACKS = [
    # alg none (RFC 8725 §2.1)
    {"alg": "none"},
    # another algorithm than the pinned key's
    {"alg": "HS256"},
    # a key carried in the header
    {"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}},
    # a key pointed at
    {"jku": "https://attacker.example/jwks.json"},
    # a critical extension we do not implement
    {"crit": ["exp"]},
    # unencoded payload (RFC 7797)
    {"b64": False},
]


@pytest.mark.parametrize("changes", HEADER_ATTACKS, ids=lambda c: next(iter(c)))
def test_forged_headers_fail(
    broker_key: SigningKey, jwks: dict[str, Any], changes: dict[str, Any]
) -> None:
    forged = _forged_header(sign_disclosure(key=broker_key, body=BODY), **changes)
    with pytest.raises(DisclosureSignatureError):
        verify_disclosure(BODY, signature=forged, jwks=jwks)


MALFORMED = [
    # an attached JWS: the payload would be a second copy to confuse
    lambda s: s.replace("..", "." + _b64({"x": 1}) + "."),
    # not three parts
    lambda s: s.split(".")[0],
    # garbage
    lambda _s: "not a signature",
    # beyond the size bound
    lambda s: s + "A" * 4096,
]


@pytest.mark.parametrize("mangle", MALFORMED, ids=["attached", "one-part", "garbage", "huge"])
def test_malformed_signatures_fail(
    broker_key: SigningKey, jwks: dict[str, Any], mangle: Callable[[str], str]
) -> None:
    signature = mangle(sign_disclosure(key=broker_key, body=BODY))
    with pytest.raises(DisclosureSignatureError):
        verify_disclosure(BODY, signature=signature, jwks=jwks)


BAD_BODIES = [
    # two readings of one member: the verifier must not pick one
    b'{"exchange": "ex_1", "exchange": "ex_2"}',
    # not JSON
    b"\xff\xfe",
    # not an object
    b"[1, 2, 3]",
    # NaN is no JSON number
    b'{"data": NaN}',
    # beyond the size bound
    b'{"data": "' + b"a" * MAX_DISCLOSURE_BYTES + b'"}',
]


@pytest.mark.parametrize("raw", BAD_BODIES, ids=["duplicate", "binary", "array", "nan", "huge"])
def test_unreadable_bodies_fail(broker_key: SigningKey, jwks: dict[str, Any], raw: bytes) -> None:
    signature = sign_disclosure(key=broker_key, body=BODY)
    with pytest.raises(DisclosureSignatureError):
        verify_disclosure(raw, signature=signature, jwks=jwks)


def test_malformed_jwks_is_a_signature_error(broker_key: SigningKey) -> None:
    signature = sign_disclosure(key=broker_key, body=BODY)
    with pytest.raises(DisclosureSignatureError):
        verify_disclosure(BODY, signature=signature, jwks={"keys": [{"kty": "RSA"}]})
