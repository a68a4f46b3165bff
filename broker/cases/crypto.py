"""Per-case data keys: field encryption and keyed pseudonyms (crypto-shredding).

Every case gets a random 256-bit data key. Personal data of the case
(subject names, birth dates, the address) is sealed with AES-256-GCM under
that key, with the case id and field name as associated data so a
ciphertext cannot be moved to another case or field. The data key itself is
stored wrapped (AES-GCM) under the key-encryption key from the key folder.

Pseudonyms for the audit log are HMAC-SHA256 under a key derived from the
case key: the DPO can link entries about one subject within a case, and once
the case key is destroyed nobody can link a pseudonym back to a person (R7).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.errors import TrustError

DATA_KEY_BYTES = 32
NONCE_BYTES = 12  # the GCM standard nonce; random nonces are safe far below 2^32 seals per key


class DecryptionError(TrustError):
    """A sealed value did not open: wrong key, wrong case or field, or tampered."""


def new_data_key() -> bytes:
    return secrets.token_bytes(DATA_KEY_BYTES)


def _aad(case_id: str, label: str) -> bytes:
    return f"ketenbroker/v1/{case_id}/{label}".encode()


def seal(key: bytes, *, case_id: str, label: str, plaintext: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, _aad(case_id, label))


GCM_TAG_BYTES = 16


def open_sealed(key: bytes, *, case_id: str, label: str, sealed: bytes) -> bytes:
    if len(sealed) < NONCE_BYTES + GCM_TAG_BYTES:
        raise DecryptionError(f"sealed {label!r} of case {case_id!r} is truncated")
    nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, _aad(case_id, label))
    except InvalidTag as e:
        raise DecryptionError(f"sealed {label!r} of case {case_id!r} does not open") from e


def wrap_data_key(kek: bytes, *, case_id: str, data_key: bytes) -> bytes:
    return seal(kek, case_id=case_id, label="data-key", plaintext=data_key)


def unwrap_data_key(kek: bytes, *, case_id: str, wrapped: bytes) -> bytes:
    return open_sealed(kek, case_id=case_id, label="data-key", sealed=wrapped)


def pseudonym(data_key: bytes, subject_ref: str) -> str:
    """The keyed pseudonym of a subject within its case, as the audit log records it."""
    pseudonym_key = hmac.new(data_key, b"ketenbroker/v1/pseudonym-key", hashlib.sha256).digest()
    tag = hmac.new(pseudonym_key, subject_ref.encode(), hashlib.sha256).hexdigest()
    return "ps_" + tag[:32]
