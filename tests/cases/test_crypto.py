"""Per-case data keys: sealed fields stay bound to their case and label; pseudonyms need the key."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from broker.cases.crypto import (
    DATA_KEY_BYTES,
    NONCE_BYTES,
    DecryptionError,
    new_data_key,
    open_sealed,
    pseudonym,
    seal,
    unwrap_data_key,
    wrap_data_key,
)
from broker.errors import TrustError

CASE = "case_0123456789abcdef0123456789abcdef"
OTHER_CASE = "case_fedcba9876543210fedcba9876543210"
LABEL = "personal-data"
PLAINTEXT = b'{"name": "Willemijn Oosterhuis-Brandsma", "birth_date": "1979-03-14"}'
TAG_BYTES = 16


@pytest.fixture
def key() -> bytes:
    return new_data_key()


def test_data_keys_are_random_256_bit_keys() -> None:
    keys = {new_data_key() for _ in range(32)}
    assert len(keys) == 32
    assert all(len(k) == DATA_KEY_BYTES == 32 for k in keys)


def test_sealed_value_opens_with_its_key_case_and_label(key: bytes) -> None:
    sealed = seal(key, case_id=CASE, label=LABEL, plaintext=PLAINTEXT)
    assert PLAINTEXT not in sealed
    assert len(sealed) == NONCE_BYTES + len(PLAINTEXT) + TAG_BYTES
    assert open_sealed(key, case_id=CASE, label=LABEL, sealed=sealed) == PLAINTEXT


def test_sealing_twice_gives_different_ciphertexts(key: bytes) -> None:
    first = seal(key, case_id=CASE, label=LABEL, plaintext=PLAINTEXT)
    second = seal(key, case_id=CASE, label=LABEL, plaintext=PLAINTEXT)
    # Fresh nonces: equal plaintexts cannot be recognised in the database.
    assert first[:NONCE_BYTES] != second[:NONCE_BYTES]
    assert first != second


@pytest.mark.parametrize(
    ("case_id", "label"),
    [
        # moved to another case
        (OTHER_CASE, LABEL),
        # moved to another field of the same case
        (CASE, "address"),
        # a case id that only differs by a suffix
        (CASE + "0", LABEL),
        # the label of a wrapped data key
        (CASE, "data-key"),
    ],
)
def test_sealed_value_moved_elsewhere_does_not_open(key: bytes, case_id: str, label: str) -> None:
    sealed = seal(key, case_id=CASE, label=LABEL, plaintext=PLAINTEXT)
    with pytest.raises(DecryptionError):
        open_sealed(key, case_id=case_id, label=label, sealed=sealed)


@pytest.mark.parametrize(
    "position",
    [
        # first byte of the nonce
        0,
        # last byte of the nonce
        NONCE_BYTES - 1,
        # first byte of the ciphertext
        NONCE_BYTES,
        # a byte in the middle of the ciphertext
        NONCE_BYTES + len(PLAINTEXT) // 2,
        # last byte of the authentication tag
        -1,
    ],
)
def test_tampered_byte_does_not_open(key: bytes, position: int) -> None:
    sealed = bytearray(seal(key, case_id=CASE, label=LABEL, plaintext=PLAINTEXT))
    sealed[position] ^= 0x01
    with pytest.raises(DecryptionError):
        open_sealed(key, case_id=CASE, label=LABEL, sealed=bytes(sealed))


@pytest.mark.parametrize(
    "cut",
    [
        # the tag cut off
        TAG_BYTES,
        # only the nonce left
        len(PLAINTEXT) + TAG_BYTES,
    ],
)
def test_truncated_sealed_value_does_not_open(key: bytes, cut: int) -> None:
    sealed = seal(key, case_id=CASE, label=LABEL, plaintext=PLAINTEXT)
    with pytest.raises(DecryptionError):
        open_sealed(key, case_id=CASE, label=LABEL, sealed=sealed[:-cut])


@pytest.mark.parametrize(
    "sealed",
    [
        # an emptied column
        b"",
        # a few bytes left of a nonce
        b"\x00" * 5,
    ],
    ids=["empty", "five-bytes"],
)
def test_sealed_value_shorter_than_a_nonce_fails_as_decryption_error(
    key: bytes, sealed: bytes
) -> None:
    with pytest.raises(DecryptionError):
        open_sealed(key, case_id=CASE, label=LABEL, sealed=sealed)


def test_sealed_value_does_not_open_under_another_key(key: bytes) -> None:
    sealed = seal(key, case_id=CASE, label=LABEL, plaintext=PLAINTEXT)
    with pytest.raises(DecryptionError):
        open_sealed(new_data_key(), case_id=CASE, label=LABEL, sealed=sealed)


def test_wrapped_data_key_unwraps_with_its_kek_and_case(key: bytes) -> None:
    kek = new_data_key()
    wrapped = wrap_data_key(kek, case_id=CASE, data_key=key)
    assert key not in wrapped
    assert unwrap_data_key(kek, case_id=CASE, wrapped=wrapped) == key


@pytest.mark.parametrize(
    ("use_other_kek", "case_id"),
    [
        # the key folder's KEK was replaced
        (True, CASE),
        # a wrapped key copied onto another case's row
        (False, OTHER_CASE),
    ],
)
def test_wrapped_data_key_does_not_unwrap_elsewhere(
    key: bytes, use_other_kek: bool, case_id: str
) -> None:
    kek = new_data_key()
    wrapped = wrap_data_key(kek, case_id=CASE, data_key=key)
    with pytest.raises(DecryptionError) as caught:
        unwrap_data_key(new_data_key() if use_other_kek else kek, case_id=case_id, wrapped=wrapped)
    assert isinstance(caught.value, TrustError)


def test_wrapped_key_is_not_a_sealed_field_of_the_case(key: bytes) -> None:
    """The wrapping label keeps a wrapped key from opening as, or being opened as, personal data."""
    kek = new_data_key()
    wrapped = wrap_data_key(kek, case_id=CASE, data_key=key)
    with pytest.raises(DecryptionError):
        open_sealed(kek, case_id=CASE, label=LABEL, sealed=wrapped)


# ---- pseudonyms --------------------------------------------------------------


def test_pseudonym_is_stable_for_the_same_key_and_subject(key: bytes) -> None:
    assert pseudonym(key, "og-1") == pseudonym(bytes(key), "og-1")
    assert re.fullmatch(r"ps_[0-9a-f]{32}", pseudonym(key, "og-1"))


@pytest.mark.parametrize(
    ("ref", "other_ref"),
    [
        # two subjects of one case
        ("og-1", "m-1"),
        # refs that differ by case only
        ("og-1", "OG-1"),
        # a ref that is a prefix of the other
        ("og-1", "og-10"),
    ],
)
def test_subjects_of_one_case_get_different_pseudonyms(
    key: bytes, ref: str, other_ref: str
) -> None:
    assert pseudonym(key, ref) != pseudonym(key, other_ref)


def test_same_subject_ref_in_two_cases_cannot_be_linked() -> None:
    refs = ["og-1", "m-1", "omw-3"]
    first, second = new_data_key(), new_data_key()
    assert {pseudonym(first, r) for r in refs}.isdisjoint({pseudonym(second, r) for r in refs})


def test_pseudonym_is_not_derivable_without_the_case_key(key: bytes) -> None:
    ref = "og-1"
    target = pseudonym(key, ref)
    # What someone without the case key could compute from the ref alone.
    guesses = {
        "ps_" + hashlib.sha256(ref.encode()).hexdigest()[:32],
        "ps_" + hmac.new(b"", ref.encode(), hashlib.sha256).hexdigest()[:32],
        "ps_" + hmac.new(b"\x00" * 32, ref.encode(), hashlib.sha256).hexdigest()[:32],
        # the data key used directly, without the derived pseudonym key
        "ps_" + hmac.new(key, ref.encode(), hashlib.sha256).hexdigest()[:32],
        pseudonym(new_data_key(), ref),
        pseudonym(b"\x00" * 32, ref),
    }
    assert target not in guesses
