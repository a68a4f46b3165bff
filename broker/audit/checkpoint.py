"""Signed checkpoints: the broker's statement "the log had this size and root".

What it does: builds the byte string a checkpoint signs, signs it with the
broker's key and checks a checkpoint against a pinned key set. A DPO who
keeps checkpoints can later ask for a consistency proof and so detect a log
that was rewritten (RFC 9162 §2.1.4, §8).

What it does not: compute roots (see `merkle.py`) or fetch keys (`keys.py`).

The signed message is exactly these bytes, ASCII, every line ending in LF::

    ketenbroker-checkpoint/v1\\n
    <size in decimal, no leading zeros>\\n
    <root hash, 64 lowercase hex digits>\\n
    <time, RFC 3339 UTC as rendered by broker.clock.rfc3339>\\n

i.e. ``b"ketenbroker-checkpoint/v1\\n" + f"{size}\\n{root_hash_hex}\\n{time}\\n".encode()``.
The first line is a domain separator: a signature over a checkpoint can
never be mistaken for a signature over a JWT or any other broker message.
Ed25519 keys sign the message directly (RFC 8032); ES256 keys sign its
SHA-256 and the signature is the 64-byte r || s form of RFC 7518 §3.4, as
in a JWS. The signature travels base64url-encoded without padding.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from broker.clock import rfc3339
from broker.errors import TrustError
from broker.keys import PublicKeySet, SigningKey

CHECKPOINT_HEADER = b"ketenbroker-checkpoint/v1\n"
ES256_COORDINATE_BYTES = 32  # P-256: r and s are 32 bytes each (RFC 7518 §3.4)
MAX_FIELD_CHARS = 200  # bounds untrusted key ids and times; real ones are < 64

_ROOT_HEX = re.compile(r"[0-9a-f]{64}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class CheckpointFormatError(TrustError):
    """A checkpoint document does not have the shape of a checkpoint."""


class CheckpointSignatureError(TrustError):
    """A checkpoint's signature does not hold under the pinned keys."""


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: `size` leaves hash to `root_hash` at `time`."""

    size: int
    root_hash: str  # lowercase hex
    time: str  # RFC 3339, UTC
    key_id: str
    signature: str  # base64url, no padding

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "root_hash": self.root_hash,
            "time": self.time,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """Parse a checkpoint document; raises CheckpointFormatError, never checks the signature."""
        expected = {"size", "root_hash", "time", "key_id", "signature"}
        if set(data) != expected:
            raise CheckpointFormatError(
                f"expected members {sorted(expected)}, got {sorted(data)!r}"
            )
        size = data["size"]
        # bool is an int in Python; a JSON `true` is not a size.
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise CheckpointFormatError(f"expected a non-negative integer size, got {size!r}")
        texts = {name: data[name] for name in ("root_hash", "time", "key_id", "signature")}
        for name, value in texts.items():
            if not isinstance(value, str) or not value:
                raise CheckpointFormatError(
                    f"expected {name} to be a non-empty string, got {value!r}"
                )
        if not _ROOT_HEX.fullmatch(texts["root_hash"]):
            raise CheckpointFormatError(
                f"expected 64 lowercase hex digits as root_hash, got {texts['root_hash']!r}"
            )
        for name in ("time", "key_id"):
            if len(texts[name]) > MAX_FIELD_CHARS or not texts[name].isprintable():
                raise CheckpointFormatError(
                    f"expected a short printable {name}, got {texts[name]!r}"
                )
        if len(texts["signature"]) > MAX_FIELD_CHARS or not _B64URL.fullmatch(texts["signature"]):
            raise CheckpointFormatError(
                f"expected an unpadded base64url signature, got {texts['signature']!r}"
            )
        return cls(
            size=size,
            root_hash=texts["root_hash"],
            time=texts["time"],
            key_id=texts["key_id"],
            signature=texts["signature"],
        )


def checkpoint_message(*, size: int, root_hash_hex: str, time: str) -> bytes:
    """The exact bytes a checkpoint signs (see the module docstring)."""
    if isinstance(size, bool) or size < 0:
        raise ValueError(f"expected a non-negative integer size, got {size!r}")
    if not _ROOT_HEX.fullmatch(root_hash_hex):
        raise ValueError(f"expected 64 lowercase hex digits, got {root_hash_hex!r}")
    # A newline in `time` would let one message parse as another.
    if not time or not time.isprintable():
        raise ValueError(f"expected a printable RFC 3339 time, got {time!r}")
    return CHECKPOINT_HEADER + f"{size}\n{root_hash_hex}\n{time}\n".encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise ValueError("not unpadded base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_checkpoint(*, key: SigningKey, size: int, root_hash: bytes, now: datetime) -> Checkpoint:
    """Sign the tree head (`size`, `root_hash`) at `now` with the broker's key."""
    time = rfc3339(now)
    message = checkpoint_message(size=size, root_hash_hex=root_hash.hex(), time=time)
    private_key = key.private_key
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        signature = private_key.sign(message)
    else:
        der = private_key.sign(message, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(ES256_COORDINATE_BYTES, "big") + s.to_bytes(
            ES256_COORDINATE_BYTES, "big"
        )
    return Checkpoint(
        size=size,
        root_hash=root_hash.hex(),
        time=time,
        key_id=key.kid,
        signature=_b64url(signature),
    )


def verify_checkpoint(checkpoint: Checkpoint, *, keys: PublicKeySet) -> None:
    """Check the checkpoint's signature under `keys`; raise CheckpointSignatureError if it fails."""
    trusted = keys.get(checkpoint.key_id)
    if trusted is None:
        raise CheckpointSignatureError(f"expected a pinned key id, got {checkpoint.key_id!r}")
    try:
        message = checkpoint_message(
            size=checkpoint.size, root_hash_hex=checkpoint.root_hash, time=checkpoint.time
        )
        signature = _b64url_decode(checkpoint.signature)
    except (ValueError, binascii.Error) as e:
        raise CheckpointSignatureError(f"checkpoint is malformed: {e}") from e
    public_key = trusted.public_key
    try:
        if trusted.alg == "EdDSA" and isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, message)
        elif trusted.alg == "ES256" and isinstance(public_key, ec.EllipticCurvePublicKey):
            if len(signature) != 2 * ES256_COORDINATE_BYTES:
                raise CheckpointSignatureError(
                    f"expected a {2 * ES256_COORDINATE_BYTES}-byte ES256 signature,"
                    f" got {len(signature)} bytes"
                )
            r = int.from_bytes(signature[:ES256_COORDINATE_BYTES], "big")
            s = int.from_bytes(signature[ES256_COORDINATE_BYTES:], "big")
            public_key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        else:
            raise CheckpointSignatureError(
                f"key {checkpoint.key_id!r} is pinned for {trusted.alg!r}"
                " but holds another type of key"
            )
    except InvalidSignature as e:
        raise CheckpointSignatureError(
            f"signature by {checkpoint.key_id!r} does not hold over size={checkpoint.size}"
            f" root_hash={checkpoint.root_hash} time={checkpoint.time!r}"
        ) from e
