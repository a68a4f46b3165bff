"""RFC 8785 canonical JSON (JCS), the one serialisation that is hashed or signed."""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785


def canonical_json(value: Any) -> bytes:
    """Serialise `value` per RFC 8785; floats that JCS cannot represent raise."""
    return bytes(rfc8785.dumps(value))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
