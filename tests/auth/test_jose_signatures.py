"""The signature helpers the verifiers share: one strict base64url reading, one verify call."""

from __future__ import annotations

import base64

import jwt
import pytest

from broker.auth.jose import b64url_decode_strict, signature_verifies, unverified_header
from broker.keys import Algorithm, generate_signing_key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@pytest.mark.parametrize("data", [b"", b"a", b"ab", b"abc", bytes(range(256))])
def test_canonical_segments_decode_to_their_bytes(data: bytes) -> None:
    assert b64url_decode_strict(_b64url(data)) == data


@pytest.mark.parametrize(
    "segment",
    [
        "YQ+",  # standard base64 alphabet, not base64url
        "YQ/",
        "Y Q",
        "Y!Q",
        "YWJjZ",  # length 1 mod 4 encodes no whole byte
        "YR",  # 'R' leaves stray bits set after the one byte: not the canonical spelling
        "YQ===",  # more padding than any length needs
        "YWI=x",  # padding in the middle
        "YWJj=",  # padding where the length needs none
    ],
)
def test_segments_pyjwt_would_refuse_are_refused(segment: str) -> None:
    assert b64url_decode_strict(segment) is None
    token = f"{_b64url(b'{}')}.{_b64url(b'{}')}.{segment}"
    with pytest.raises(jwt.DecodeError):
        jwt.api_jws.PyJWS()._load(token)


def test_padding_pyjwt_tolerates_is_tolerated() -> None:
    # pyjwt accepts trailing '=' of the right length (some issuers send it);
    # refusing it here would make this reading and jwt.decode disagree.
    assert b64url_decode_strict("YQ==") == b"a"


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_a_jws_signature_verifies_only_over_its_own_input(alg: Algorithm) -> None:
    key = generate_signing_key(alg)
    token = jwt.encode({"n": 1}, key.private_key, algorithm=alg)
    header, payload, signature = token.split(".")
    raw = b64url_decode_strict(signature)
    assert raw is not None
    signed = f"{header}.{payload}".encode("ascii")
    assert signature_verifies(signed, raw, key=key.public_key, alg=alg)
    assert not signature_verifies(signed + b"x", raw, key=key.public_key, alg=alg)
    flipped = bytes([raw[0] ^ 1]) + raw[1:]
    assert not signature_verifies(signed, flipped, key=key.public_key, alg=alg)
    other = generate_signing_key(alg)
    assert not signature_verifies(signed, raw, key=other.public_key, alg=alg)


def test_a_key_of_another_type_than_the_algorithm_is_refused() -> None:
    ed, ec = generate_signing_key("EdDSA"), generate_signing_key("ES256")
    token = jwt.encode({"n": 1}, ed.private_key, algorithm="EdDSA")
    header, payload, signature = token.split(".")
    raw = b64url_decode_strict(signature)
    assert raw is not None
    with pytest.raises(jwt.InvalidKeyError):
        signature_verifies(
            f"{header}.{payload}".encode("ascii"), raw, key=ec.public_key, alg="EdDSA"
        )


@pytest.mark.parametrize("alg", ["none", "HS256", "RS256"])
def test_algorithms_outside_the_allow_list_are_refused(alg: str) -> None:
    key = generate_signing_key("EdDSA")
    with pytest.raises(ValueError, match="expected alg"):
        signature_verifies(b"a.b", b"sig", key=key.public_key, alg=alg)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("e30.e30", "three segments"),
        ("e30.e30.e30.e30", "three segments"),
        ("e3+.e30.AAAA", "base64url header"),
        (f"{_b64url(b'[1]')}.e30.AAAA", "header object"),
        (f"{_b64url(b'{' + bytes([0xFF]) + b'}')}.e30.AAAA", "codec can't decode"),
        (_b64url(b'{"kid": 7}') + ".e30.AAAA", "string kid"),
        (f"{_b64url(b'[' * 5000 + b']' * 5000)}.e30.AAAA", "nested too deeply"),
    ],
)
def test_headers_that_are_not_json_objects_are_refused(token: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        unverified_header(token)


def test_a_header_is_read_as_pyjwt_reads_it() -> None:
    key = generate_signing_key("EdDSA")
    token = jwt.encode({"n": 1}, key.private_key, algorithm="EdDSA", headers={"kid": "k1"})
    assert unverified_header(token) == jwt.get_unverified_header(token)
