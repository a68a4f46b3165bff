"""Key material: generation, storage on disk, JWKS, and the trusted-key sets.

What it does: makes development key pairs (Ed25519 by default, ES256 on
request) for the broker and every principal the convenant names, writes the
private halves into a git-ignored folder (`keys/dev/` by default) with
owner-only permissions, and publishes the public halves as JWKS. It also holds
the key-encryption key that wraps the per-case data keys (crypto-shredding).

What it does not: fetch keys from anywhere. Keys are pinned per principal by
file; a JWT's `jku`, `x5u` or embedded `jwk` is never followed (style.md §17).

Layout of a key folder::

    private/<principal>.pem        PKCS#8 private key, mode 0600
    private/case-kek.bin           32 random bytes: wraps per-case data keys
    public/<principal>.jwks.json   that principal's public JWKS
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from broker.errors import TrustError

Algorithm = Literal["EdDSA", "ES256"]
ALLOWED_ALGORITHMS: tuple[Algorithm, ...] = ("EdDSA", "ES256")

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

KEK_BYTES = 32  # AES-256 key-encryption key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_jwk_of(public_key: PublicKey) -> dict[str, str]:
    """The RFC 7517 JWK members that identify a public key (no `kid`, no `alg`)."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}
    numbers = public_key.public_numbers()
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise TrustError(f"expected a P-256 key, got curve {public_key.curve.name!r}")
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }


def jwk_thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 thumbprint (SHA-256) of a public JWK; used as the `kid`."""
    required = {"OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y")}[jwk["kty"]]
    members = {name: jwk[name] for name in required}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode())
    return _b64url(digest.digest())


@dataclass(frozen=True)
class SigningKey:
    """A private key with the `kid` and algorithm it signs under."""

    kid: str
    alg: Algorithm
    private_key: PrivateKey

    @property
    def public_key(self) -> PublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        jwk = public_jwk_of(self.public_key)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}


@dataclass(frozen=True)
class TrustedKey:
    kid: str
    alg: Algorithm
    public_key: PublicKey


class PublicKeySet:
    """The pinned public keys of one principal, looked up by `kid`."""

    def __init__(self, keys: Iterable[TrustedKey]) -> None:
        self._by_kid = {key.kid: key for key in keys}

    def get(self, kid: object) -> TrustedKey | None:
        if not isinstance(kid, str):
            return None
        return self._by_kid.get(kid)

    def __iter__(self):  # type: ignore[no-untyped-def]  # iterator type is obvious
        return iter(self._by_kid.values())

    def __len__(self) -> int:
        return len(self._by_kid)

    def to_jwks(self) -> dict[str, list[dict[str, str]]]:
        keys = []
        for key in self._by_kid.values():
            keys.append(
                {**public_jwk_of(key.public_key), "kid": key.kid, "alg": key.alg, "use": "sig"}
            )
        return {"keys": keys}


def keyset_from_jwks(jwks: Mapping[str, Any]) -> PublicKeySet:
    """Parse a JWKS, accepting only Ed25519 (EdDSA) and P-256 (ES256) signing keys."""
    try:
        return _keyset_from_jwks(jwks)
    except TrustError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise TrustError(f"malformed JWKS: {type(e).__name__}") from e


def _keyset_from_jwks(jwks: Mapping[str, Any]) -> PublicKeySet:
    trusted = []
    for jwk in jwks.get("keys", []):
        kty, crv = jwk.get("kty"), jwk.get("crv")
        public_key: PublicKey
        if kty == "OKP" and crv == "Ed25519":
            public_key = ed25519.Ed25519PublicKey.from_public_bytes(_b64url_decode(jwk["x"]))
            alg: Algorithm = "EdDSA"
        elif kty == "EC" and crv == "P-256":
            x = int.from_bytes(_b64url_decode(jwk["x"]), "big")
            y = int.from_bytes(_b64url_decode(jwk["y"]), "big")
            public_key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
            alg = "ES256"
        else:
            raise TrustError(f"expected an Ed25519 or P-256 key, got kty={kty!r} crv={crv!r}")
        kid = jwk.get("kid") or jwk_thumbprint(jwk)
        trusted.append(TrustedKey(kid=kid, alg=alg, public_key=public_key))
    return PublicKeySet(trusted)


def generate_signing_key(alg: Algorithm = "EdDSA") -> SigningKey:
    private_key: PrivateKey
    if alg == "EdDSA":
        private_key = ed25519.Ed25519PrivateKey.generate()
    elif alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"expected one of {ALLOWED_ALGORITHMS}, got {alg!r}")
    kid = jwk_thumbprint(public_jwk_of(private_key.public_key()))
    return SigningKey(kid=kid, alg=alg, private_key=private_key)


def signing_key_from_pem(pem: bytes) -> SigningKey:
    private_key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        alg: Algorithm = "EdDSA"
    elif isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(
        private_key.curve, ec.SECP256R1
    ):
        alg = "ES256"
    else:
        raise TrustError("expected an Ed25519 or P-256 private key")
    kid = jwk_thumbprint(public_jwk_of(private_key.public_key()))
    return SigningKey(kid=kid, alg=alg, private_key=private_key)


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


class KeyStore:
    """A key folder on disk (see the module docstring for its layout)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _private_path(self, principal: str) -> Path:
        return self.root / "private" / f"{principal}.pem"

    def _public_path(self, principal: str) -> Path:
        return self.root / "public" / f"{principal}.jwks.json"

    def has(self, principal: str) -> bool:
        return self._private_path(principal).exists()

    def create(self, principal: str, alg: Algorithm = "EdDSA") -> SigningKey:
        """Make a key pair for `principal`; its public JWKS is rewritten to hold only it."""
        key = generate_signing_key(alg)
        pem = key.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(self._private_path(principal), pem)
        public_path = self._public_path(principal)
        public_path.parent.mkdir(parents=True, exist_ok=True)
        public_path.write_text(json.dumps({"keys": [key.public_jwk()]}, indent=2) + "\n")
        return key

    def signing_key(self, principal: str) -> SigningKey:
        path = self._private_path(principal)
        try:
            return signing_key_from_pem(path.read_bytes())
        except FileNotFoundError as e:
            raise TrustError(
                f"no private key for {principal!r} at {path}; run `ketenbroker keys init`"
            ) from e

    def public_keyset(self, principal: str) -> PublicKeySet:
        path = self._public_path(principal)
        try:
            return keyset_from_jwks(json.loads(path.read_text()))
        except FileNotFoundError as e:
            raise TrustError(f"no public keys for {principal!r} at {path}") from e

    def data_kek(self) -> bytes:
        """The key-encryption key for per-case data keys, made on first use."""
        path = self.root / "private" / "case-kek.bin"
        if not path.exists():
            _write_private(path, secrets.token_bytes(KEK_BYTES))
        kek = path.read_bytes()
        if len(kek) != KEK_BYTES:
            raise TrustError(f"expected a {KEK_BYTES}-byte key-encryption key, got {len(kek)}")
        return kek

    def init(
        self, principals: Iterable[str], *, alg: Algorithm = "EdDSA", if_missing: bool = True
    ) -> list[str]:
        """Create keys for every principal (skipping existing ones when `if_missing`)."""
        made = []
        for principal in principals:
            if if_missing and self.has(principal):
                continue
            self.create(principal, alg)
            made.append(principal)
        self.data_kek()
        return made
