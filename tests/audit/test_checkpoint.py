"""Signed checkpoints: the documented bytes, and that no field can be changed unseen."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from broker.audit.checkpoint import (
    Checkpoint,
    CheckpointFormatError,
    CheckpointSignatureError,
    checkpoint_message,
    sign_checkpoint,
    verify_checkpoint,
)
from broker.keys import Algorithm, SigningKey, generate_signing_key
from tests.audit.conftest import T0, keyset_of

ROOT = bytes(range(32))


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture(params=["EdDSA", "ES256"])
def key(request: pytest.FixtureRequest) -> SigningKey:
    alg: Algorithm = request.param
    return generate_signing_key(alg)


def test_message_is_the_documented_byte_string() -> None:
    message = checkpoint_message(
        size=7, root_hash_hex="ab" * 32, time="2026-05-01T12:00:00.000000Z"
    )
    assert message == (
        b"ketenbroker-checkpoint/v1\n7\n" + b"ab" * 32 + b"\n2026-05-01T12:00:00.000000Z\n"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        # a newline in the time would let one message read as another
        {"size": 1, "root_hash_hex": "ab" * 32, "time": "2026\n9"},
        # upper-case hex is a second spelling of the same root
        {"size": 1, "root_hash_hex": "AB" * 32, "time": "t"},
        # a root that is not a SHA-256 output
        {"size": 1, "root_hash_hex": "ab" * 31, "time": "t"},
        # sizes are counts
        {"size": -1, "root_hash_hex": "ab" * 32, "time": "t"},
    ],
)
def test_message_refuses_ambiguous_fields(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="expected"):
        checkpoint_message(**kwargs)


def test_signed_checkpoint_verifies_under_the_signers_key(key: SigningKey) -> None:
    checkpoint = sign_checkpoint(key=key, size=3, root_hash=ROOT, now=T0)
    assert checkpoint.size == 3
    assert checkpoint.root_hash == ROOT.hex()
    assert checkpoint.time == "2026-05-01T12:00:00.000000Z"
    assert checkpoint.key_id == key.kid
    assert "=" not in checkpoint.signature
    verify_checkpoint(checkpoint, keys=keyset_of(key))


def test_signature_is_the_jws_form_of_the_message(key: SigningKey) -> None:
    """A JWS library verifies the raw signature: Ed25519 bytes, or ES256 as r || s."""
    checkpoint = sign_checkpoint(key=key, size=3, root_hash=ROOT, now=T0)
    message = checkpoint_message(size=3, root_hash_hex=ROOT.hex(), time=checkpoint.time)
    signature = b64url_decode(checkpoint.signature)
    algorithm = OKPAlgorithm() if key.alg == "EdDSA" else ECAlgorithm(ECAlgorithm.SHA256)
    assert len(signature) == 64
    assert algorithm.verify(message, key.public_key, signature)


def _other_signature(cp: Checkpoint) -> str:
    raw = bytearray(b64url_decode(cp.signature))
    raw[5] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


# Each row changes one field of a genuine checkpoint.
TAMPERS: list[tuple[str, Callable[[Checkpoint], Checkpoint]]] = [
    ("size", lambda cp: dataclasses.replace(cp, size=cp.size + 1)),
    ("root_hash", lambda cp: dataclasses.replace(cp, root_hash="00" * 32)),
    ("time", lambda cp: dataclasses.replace(cp, time="2026-05-01T12:00:01.000000Z")),
    ("key_id", lambda cp: dataclasses.replace(cp, key_id="someone-else")),
    ("signature", lambda cp: dataclasses.replace(cp, signature=_other_signature(cp))),
    ("signature, not base64url", lambda cp: dataclasses.replace(cp, signature="!!" + cp.signature)),
    ("signature, truncated", lambda cp: dataclasses.replace(cp, signature=cp.signature[:-4])),
]


@pytest.mark.parametrize(("field", "tamper"), TAMPERS, ids=[t[0] for t in TAMPERS])
def test_tampering_any_field_breaks_verification(
    key: SigningKey, field: str, tamper: Callable[[Checkpoint], Checkpoint]
) -> None:
    genuine = sign_checkpoint(key=key, size=3, root_hash=ROOT, now=T0)
    with pytest.raises(CheckpointSignatureError):
        verify_checkpoint(tamper(genuine), keys=keyset_of(key))


def test_checkpoint_from_a_key_that_is_not_pinned_is_rejected(key: SigningKey) -> None:
    stranger = generate_signing_key(key.alg)
    checkpoint = sign_checkpoint(key=stranger, size=3, root_hash=ROOT, now=T0)
    with pytest.raises(CheckpointSignatureError, match="expected a pinned key id"):
        verify_checkpoint(checkpoint, keys=keyset_of(key))


def test_stranger_signing_under_the_pinned_key_id_is_rejected(key: SigningKey) -> None:
    stranger = dataclasses.replace(generate_signing_key(key.alg), kid=key.kid)
    checkpoint = sign_checkpoint(key=stranger, size=3, root_hash=ROOT, now=T0)
    with pytest.raises(CheckpointSignatureError, match="does not hold"):
        verify_checkpoint(checkpoint, keys=keyset_of(key))


def test_key_pinned_for_another_algorithm_is_rejected() -> None:
    """An ES256 kid that suddenly holds Ed25519 signatures is not trusted."""
    ed, es = generate_signing_key("EdDSA"), generate_signing_key("ES256")
    checkpoint = sign_checkpoint(key=ed, size=1, root_hash=ROOT, now=T0)
    confused = dataclasses.replace(es, kid=ed.kid, alg="EdDSA")
    with pytest.raises(CheckpointSignatureError, match="another type of key"):
        verify_checkpoint(checkpoint, keys=keyset_of(confused))


def test_dict_form_round_trips(key: SigningKey) -> None:
    checkpoint = sign_checkpoint(key=key, size=0, root_hash=ROOT, now=T0)
    document = checkpoint.to_dict()
    assert set(document) == {"size", "root_hash", "time", "key_id", "signature"}
    assert Checkpoint.from_dict(document) == checkpoint
    verify_checkpoint(Checkpoint.from_dict(document), keys=keyset_of(key))


GOOD: dict[str, Any] = {
    "size": 1,
    "root_hash": "ab" * 32,
    "time": "2026-05-01T12:00:00.000000Z",
    "key_id": "k1",
    "signature": "c2ln",
}


@pytest.mark.parametrize(
    "document",
    [
        {**GOOD, "size": True},  # JSON true is not a size
        {**GOOD, "size": -1},  # sizes are counts
        {**GOOD, "size": "1"},  # a string is not a size
        {**GOOD, "root_hash": "AB" * 32},  # one spelling of a root only
        {**GOOD, "root_hash": "ab"},  # not a SHA-256 output
        {**GOOD, "time": "2026\n"},  # would break the signed message's lines
        {**GOOD, "key_id": "k" * 201},  # unbounded untrusted text
        {**GOOD, "key_id": ""},  # empty key id
        {**GOOD, "signature": "c2ln=="},  # padding is not part of the format
        {**GOOD, "extra": 1},  # unknown members
        {k: v for k, v in GOOD.items() if k != "signature"},  # a missing member
    ],
)
def test_malformed_checkpoint_documents_are_refused(document: dict[str, Any]) -> None:
    with pytest.raises(CheckpointFormatError):
        Checkpoint.from_dict(document)
