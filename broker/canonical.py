"""RFC 8785 canonical JSON (JCS), the one serialisation that is hashed or signed.

What it does: `canonical_json` serialises a value per RFC 8785;
`parse_if_canonical` parses bytes and says whether they are exactly the
RFC 8785 form of what they parse to; `canonical_index` asks it the audit
verifiers' form of that question (is this row the canonical form of an
entry, and what is its index).

What it does not: accept anything `rfc8785` would refuse, or answer
differently from it. The reference implementation (`rfc8785`, pure Python,
~45 µs for an audit entry) stays the definition; orjson is only a shortcut
taken where its output is provably the same bytes, and every other value
goes to the reference. tests/test_canonical.py checks the two against each
other with hypothesis and over every Unicode scalar value.

Why the shortcut is safe where it is taken. For values built only of `str`,
`int` with |i| < 2**53, `bool`, `None`, `list` and `dict` with `str` keys:

* integers: both print the decimal digits; orjson's OPT_STRICT_INTEGER
  refuses exactly the integers JCS refuses (|i| >= 2**53), and the refusal
  sends the value to the reference, which raises its own error;
* strings: RFC 8785 §3.2.2.2 escapes `"`, `\\` and U+0000..U+001F (with
  \\b \\t \\n \\f \\r short forms, else lowercase \\u00xx) and writes
  everything else (DEL, U+2028/2029, `/`) as UTF-8; orjson does the same
  (tested for every scalar value), and refuses lone surrogates, which the
  reference then refuses too;
* member order: JCS sorts keys by UTF-16 code units (§3.2.3), orjson by
  code points. The two orders differ only between a character >= U+10000
  and one in U+E000..U+FFFF, so keys holding any character >= U+10000 take
  the reference path;
* floats are left to the reference: JCS prints them as ECMAScript does
  (1.0 as `1`, 1e21 as `1e+21`) and orjson does not.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import rfc8785

_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
# UTF-8 lead bytes of characters >= U+10000 are 0xF0..0xF4; deleting every
# other byte value leaves them, so an empty result means "none present".
_BELOW_ASTRAL_LEAD = bytes(range(0xF0))
_ASTRAL = "\U00010000"


def _bmp_key(key: object) -> bool:
    """A `str` key that sorts the same by code points as by UTF-16 code units."""
    return type(key) is str and (key.isascii() or max(key) < _ASTRAL)


def _plain(value: Any) -> bool:
    """Whether `value` is built only of the types the orjson shortcut is proven for."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return True  # the 2**53 bound is orjson's OPT_STRICT_INTEGER
    if kind is list:
        return all(_plain(item) for item in value)
    if kind is dict:
        return all(_bmp_key(k) and _plain(v) for k, v in value.items())
    return False  # float, tuple, subclasses (enums...) and the rest: the reference decides


def canonical_json(value: Any) -> bytes:
    """Serialise `value` per RFC 8785; floats that JCS cannot represent raise."""
    if _plain(value):
        try:
            return orjson.dumps(value, option=_ORJSON_OPTIONS)
        except orjson.JSONEncodeError:
            pass  # out-of-range integer, lone surrogate, deep nesting: the reference raises
    return bytes(rfc8785.dumps(value))


_NESTED_OR_FLOAT = frozenset({dict, list, float})


def _has_float(value: Any) -> bool:
    """Whether a parsed JSON value holds a float anywhere (one set lookup per member)."""
    if type(value) is float:
        return True
    if type(value) is not dict and type(value) is not list:
        return False
    for item in value.values() if type(value) is dict else value:
        if type(item) in _NESTED_OR_FLOAT and (type(item) is float or _has_float(item)):
            return True
    return False


def parse_if_canonical(data: bytes) -> tuple[bool, Any]:
    """(True, value) when `data` is exactly the RFC 8785 form of the JSON `value` it holds.

    (False, None) when it is not, or when that cannot be shown by the
    shortcut (floats, keys beyond U+FFFF, malformed JSON): the caller then
    decodes `data` its own way and canonicalises with `canonical_json`,
    which gives the reference answer. Never (True, ...) for bytes that
    `rfc8785.dumps` would not produce from the parsed value.
    """
    try:
        value = orjson.loads(data)
        # Re-encoding also rules out whitespace, duplicate members, escapes
        # JCS does not use and integers beyond 2**53.
        if orjson.dumps(value, option=_ORJSON_OPTIONS) != data:
            return False, None
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return False, None
    if not data.isascii() and data.translate(None, _BELOW_ASTRAL_LEAD):
        return False, None
    if _has_float(value):
        return False, None
    return True, value


def _index_of(value: Any) -> int | None:
    index = value.get("index") if type(value) is dict else None
    return index if type(index) is int else None


def canonical_index(data: bytes) -> int | None:
    """The integer `"index"` of the JSON object `data` is exactly the RFC 8785 form of.

    None when `data` is not that (not canonical, not an object, no integer
    index) or when `parse_if_canonical` cannot show it; the audit verifiers
    then decode `data` the reference way.
    """
    canonical, value = parse_if_canonical(data)
    return _index_of(value) if canonical else None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
