"""Key folders, JWKS and kids (broker/keys.py): private halves stay private, only pinned curves."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from broker.errors import TrustError
from broker.keys import (
    KEK_BYTES,
    KeyStore,
    generate_signing_key,
    jwk_thumbprint,
    keyset_from_jwks,
    signing_key_from_pem,
)

PRINCIPALS = ["broker", "gemeente-lekstroom", "politie-lekstroom"]
MESSAGE = b"ketenbroker test message"

# RFC 8037 Appendix A.2 and A.3: an Ed25519 public key and its RFC 7638 thumbprint.
RFC8037_JWK = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def rfc7638_thumbprint(jwk: dict[str, str], members: tuple[str, ...]) -> str:
    """Written from RFC 7638 §3: required members, sorted, no whitespace, SHA-256, base64url."""
    text = "{" + ",".join(f'"{name}":"{jwk[name]}"' for name in sorted(members)) + "}"
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys")


def test_init_writes_owner_only_private_keys_and_public_jwks(store: KeyStore) -> None:
    made = store.init(PRINCIPALS)
    assert made == PRINCIPALS
    for principal in PRINCIPALS:
        private = store.root / "private" / f"{principal}.pem"
        loaded = serialization.load_pem_private_key(private.read_bytes(), password=None)
        assert isinstance(loaded, ed25519.Ed25519PrivateKey)  # unencrypted PKCS#8 Ed25519
        assert _mode(private) == 0o600
        jwks = json.loads((store.root / "public" / f"{principal}.jwks.json").read_text())
        (jwk,) = jwks["keys"]
        assert jwk["kid"] == store.signing_key(principal).kid
        assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == (
            "OKP",
            "Ed25519",
            "EdDSA",
            "sig",
        )
    kek = store.root / "private" / "case-kek.bin"
    assert _mode(kek) == 0o600
    assert len(kek.read_bytes()) == KEK_BYTES


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_public_jwks_holds_no_private_member(store: KeyStore, alg: Any) -> None:
    store.init(PRINCIPALS, alg=alg)
    for principal in PRINCIPALS:
        text = (store.root / "public" / f"{principal}.jwks.json").read_text()
        for jwk in json.loads(text)["keys"]:
            # RFC 7518 §6.2.2 / RFC 8037 §2: "d" is the private key; the others are RSA's.
            assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(jwk)
        assert "PRIVATE" not in text


def test_init_if_missing_keeps_existing_keys(store: KeyStore) -> None:
    store.init(PRINCIPALS[:2])
    before = {p: store.signing_key(p).kid for p in PRINCIPALS[:2]}
    kek = store.data_kek()
    made = store.init(PRINCIPALS, if_missing=True)
    assert made == PRINCIPALS[2:]
    assert {p: store.signing_key(p).kid for p in PRINCIPALS[:2]} == before
    assert store.data_kek() == kek
    assert store.init(PRINCIPALS, if_missing=True) == []


def test_init_without_if_missing_replaces_keys_but_not_the_kek(store: KeyStore) -> None:
    store.init(PRINCIPALS)
    before = store.signing_key("broker").kid
    kek = store.data_kek()
    assert store.init(["broker"], if_missing=False) == ["broker"]
    assert store.signing_key("broker").kid != before
    # The KEK wraps every case's data key: replacing it would shred every case.
    assert store.data_kek() == kek


@pytest.mark.parametrize(
    ("alg", "curve_type"),
    [
        # the default
        ("EdDSA", ed25519.Ed25519PublicKey),
        # on request
        ("ES256", ec.EllipticCurvePublicKey),
    ],
)
def test_stored_key_signs_and_its_pinned_public_key_verifies(
    store: KeyStore, alg: Any, curve_type: type
) -> None:
    store.init(["broker"], alg=alg)
    key = store.signing_key("broker")
    assert key.alg == alg
    (trusted,) = list(store.public_keyset("broker"))
    assert (trusted.kid, trusted.alg) == (key.kid, alg)
    assert isinstance(trusted.public_key, curve_type)
    if isinstance(key.private_key, ed25519.Ed25519PrivateKey):
        assert isinstance(trusted.public_key, ed25519.Ed25519PublicKey)
        trusted.public_key.verify(key.private_key.sign(MESSAGE), MESSAGE)
    else:
        assert isinstance(trusted.public_key, ec.EllipticCurvePublicKey)
        signature = key.private_key.sign(MESSAGE, ec.ECDSA(hashes.SHA256()))
        trusted.public_key.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))
    assert store.public_keyset("broker").get(key.kid) == trusted
    assert store.public_keyset("broker").to_jwks() == {"keys": [key.public_jwk()]}


def test_missing_keys_are_a_trust_error(store: KeyStore) -> None:
    with pytest.raises(TrustError, match="keys init"):
        store.signing_key("nobody")
    with pytest.raises(TrustError):
        store.public_keyset("nobody")


def test_truncated_kek_is_refused(store: KeyStore) -> None:
    store.init([])
    (store.root / "private" / "case-kek.bin").write_bytes(b"\x01" * 16)
    with pytest.raises(TrustError, match="32-byte"):
        store.data_kek()


# ---- kids --------------------------------------------------------------------------


def test_thumbprint_matches_the_rfc_8037_example() -> None:
    assert rfc7638_thumbprint(RFC8037_JWK, ("crv", "kty", "x")) == RFC8037_THUMBPRINT
    assert jwk_thumbprint(RFC8037_JWK) == RFC8037_THUMBPRINT
    # Members outside the required set do not change it.
    assert jwk_thumbprint({**RFC8037_JWK, "kid": "other", "alg": "EdDSA"}) == RFC8037_THUMBPRINT


@pytest.mark.parametrize(
    ("alg", "members"),
    [
        # Ed25519: RFC 8037 §2 required members
        ("EdDSA", ("crv", "kty", "x")),
        # P-256: RFC 7638 §3.2 required members
        ("ES256", ("crv", "kty", "x", "y")),
    ],
)
def test_kid_is_the_rfc_7638_thumbprint(alg: Any, members: tuple[str, ...]) -> None:
    key = generate_signing_key(alg)
    jwk = key.public_jwk()
    assert key.kid == rfc7638_thumbprint(jwk, members)
    assert jwk["kid"] == key.kid


def test_kid_survives_the_pem_round_trip(store: KeyStore) -> None:
    made = store.create("broker")
    pem = (store.root / "private" / "broker.pem").read_bytes()
    assert signing_key_from_pem(pem).kid == made.kid


# ---- trusted key sets -----------------------------------------------------------------


REJECTED_JWKS = [
    # RSA: not on the allow-list at all
    {"kty": "RSA", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri", "e": "AQAB"},
    # a shared secret (HS256 key): alg confusion would make it a verifier
    {"kty": "oct", "k": "c2VjcmV0"},
    # P-384 is a fine curve, but not a pinned one
    {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
    # secp256k1 is not P-256
    {"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"},
    # Ed448 is another Edwards curve
    {"kty": "OKP", "crv": "Ed448", "x": "AA"},
    # X25519 is for key agreement, not signatures
    {"kty": "OKP", "crv": "X25519", "x": RFC8037_JWK["x"]},
    # kty and crv swapped between families
    {"kty": "EC", "crv": "Ed25519", "x": RFC8037_JWK["x"]},
    # no kty at all
    {"crv": "Ed25519", "x": RFC8037_JWK["x"]},
]


@pytest.mark.parametrize("jwk", REJECTED_JWKS)
def test_keyset_accepts_only_ed25519_and_p256(jwk: dict[str, str]) -> None:
    good = {**RFC8037_JWK, "kid": "good"}
    with pytest.raises(TrustError, match="Ed25519 or P-256"):
        keyset_from_jwks({"keys": [good, jwk]})


def test_keyset_without_kid_uses_the_thumbprint() -> None:
    keyset = keyset_from_jwks({"keys": [RFC8037_JWK]})
    trusted = keyset.get(RFC8037_THUMBPRINT)
    assert trusted is not None
    assert trusted.alg == "EdDSA"
    assert len(keyset) == 1


@pytest.mark.parametrize(
    "kid",
    [
        # a kid that is not there
        "unknown",
        # a kid that is not a string (from a forged header)
        ["good"],
        # nothing
        None,
    ],
)
def test_lookup_of_an_unknown_or_odd_kid_finds_nothing(kid: object) -> None:
    keyset = keyset_from_jwks({"keys": [{**RFC8037_JWK, "kid": "good"}]})
    assert keyset.get("good") is not None
    assert keyset.get(kid) is None


def test_public_keyset_sees_a_rotation_and_a_revocation_by_another_store(
    store: KeyStore,
) -> None:
    # The parsed keyset is reused between calls; a change written by another
    # process (here: another KeyStore on the same folder) must show at once.
    store.init(["politie"], alg="EdDSA", if_missing=False)
    first = store.current_kid("politie")
    assert store.public_keyset("politie").kids() == [first]
    other = KeyStore(store.root)
    second = other.rotate("politie").kid
    assert store.public_keyset("politie").kids() == [second, first]
    other.store_revocation(
        "politie", str(first), reason="key_compromise", now=datetime(2026, 11, 21, tzinfo=UTC)
    )
    assert store.public_keyset("politie").kids() == [second]
