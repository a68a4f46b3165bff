"""The orjson shortcut in broker.canonical gives the reference RFC 8785 bytes, or steps aside.

`rfc8785` is the definition. Every test here compares with it: the same
bytes for every value the shortcut takes, the same refusal otherwise, and
`parse_if_canonical` never vouching for bytes the reference would not write.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.canonical import canonical_index, canonical_json, parse_if_canonical

# Characters where escaping or ordering rules bite: controls, quote,
# backslash, slash, DEL, the JS line separators, the private-use block
# that sorts differently in UTF-16, and characters beyond the BMP.
_TRICKY = '\x00\x08\t\n\x0c\r\x1f "\\/\x7f\x80\u2028\u2029\ue000\uffff\U00010000\U0001f600'
_texts = st.text(alphabet=st.sampled_from(_TRICKY) | st.characters(), max_size=12)
_ints = st.integers(min_value=-(2**64), max_value=2**64) | st.sampled_from(
    [2**53 - 1, 2**53, -(2**53 - 1), -(2**53), 0]
)
_scalars = st.none() | st.booleans() | _ints | _texts | st.floats(allow_nan=False)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_texts, inner, max_size=5),
    max_leaves=25,
)


def _reference(value: Any) -> bytes | type[BaseException]:
    try:
        return bytes(rfc8785.dumps(value))
    except Exception as e:  # noqa: BLE001 - the test compares which kind of refusal
        return type(e)


def _ours(value: Any) -> bytes | type[BaseException]:
    try:
        return canonical_json(value)
    except Exception as e:  # noqa: BLE001 - as above
        return type(e)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(_values)
def test_canonical_json_equals_the_reference_or_refuses_alike(value: Any) -> None:
    assert _ours(value) == _reference(value)


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(_values)
def test_parse_if_canonical_vouches_only_for_reference_bytes(value: Any) -> None:
    # Fed both the canonical form and orjson's unsorted, float-printing form.
    candidates: list[bytes] = []
    reference = _reference(value)
    if isinstance(reference, bytes):
        candidates.append(reference)
    # Integers beyond 64 bits, lone surrogates: orjson has nothing to feed.
    with contextlib.suppress(orjson.JSONEncodeError):
        candidates.append(orjson.dumps(value))
    for data in candidates:
        ok, parsed = parse_if_canonical(data)
        if ok:
            assert bytes(rfc8785.dumps(parsed)) == data


# Texts dense in the characters where JSON numbers and strings meet: dots,
# solidi, digits, e, signs, escapes.
_DENSE = './0123456789e+-E\\"a\ue000\U0001f600'
_dense_texts = st.text(alphabet=st.sampled_from(_DENSE), max_size=10)
_entries = st.fixed_dictionaries(
    {"index": _ints | st.booleans() | _dense_texts},
    optional={
        "a": _values,
        "b": st.dictionaries(_dense_texts, _scalars | _dense_texts, max_size=4),
        "c": st.lists(_dense_texts | st.floats(allow_nan=False) | _ints, max_size=4),
    },
).flatmap(lambda d: st.dictionaries(_dense_texts, _scalars, max_size=3).map(lambda e: {**e, **d}))


def _index_verdict(data: bytes) -> int | None:
    """The reference answer: the integer index of the object `data` is the JCS form of."""
    try:
        value = json.loads(data)
        if bytes(rfc8785.dumps(value)) != data:
            return None
    except (ValueError, RecursionError):
        return None
    index = value.get("index") if type(value) is dict else None
    return index if type(index) is int else None


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(_entries, st.data())
def test_canonical_index_never_vouches_for_what_the_reference_would_not(
    entry: dict[str, Any], data: st.DataObject
) -> None:
    candidates: list[bytes] = []
    reference = _reference(entry)
    if isinstance(reference, bytes):
        candidates.append(reference)
        # The same bytes with one character changed: mostly not canonical.
        at = data.draw(st.integers(0, len(reference) - 1))
        swap = data.draw(st.sampled_from(b"./0e+-1\\"))
        candidates.append(reference[:at] + bytes([swap]) + reference[at + 1 :])
    with contextlib.suppress(orjson.JSONEncodeError):
        candidates.append(orjson.dumps(entry, option=orjson.OPT_SORT_KEYS))
    for text in candidates:
        found = canonical_index(text)
        if found is not None:
            assert found == _index_verdict(text)


@pytest.mark.parametrize(
    ("data", "index"),
    [
        (b'{"a":"x.y","index":3}', 3),  # a dot in a string
        (b'{"a":"x/y","index":3}', 3),  # a solidus, unescaped as JCS writes it
        (b'{"a":"x\\/y","index":3}', None),  # an escaped solidus: JCS does not escape it
        (b'{"a":"1e-5","index":3}', 3),  # an exponent in a string
        (b'{"a":1e-5,"index":3}', None),  # a float in orjson's form: never
        (b'{"a":1.5,"index":3}', None),
        (b'{"a.":1,"a/":2,"index":3}', 3),  # '.' sorts before '/'
        (b'{"a":-5,"index":3}', 3),  # a negative integer
        (b'{"a/":1,"a.":2,"index":3}', None),  # out of order
        (b'{"index":"3"}', None),  # not an integer
        (b'{"index":true}', None),
        (b"[3]", None),
    ],
)
def test_canonical_index_of_telling_texts(data: bytes, index: int | None) -> None:
    assert canonical_index(data) == index
    if index is not None:  # None may also be "not shown cheaply" (a float)
        assert _index_verdict(data) == index


@pytest.mark.parametrize(
    "data",
    [
        b'{"b":1,"a":2}',  # members out of order
        b'{"a": 1}',  # whitespace
        b'{"a":1,"a":1}',  # duplicate member: orjson keeps one, the bytes differ
        b'{"a":1.0}',  # JCS writes 1
        b'{"a":1.5}',  # a float: left to the reference even where both agree
        b'{"a":9007199254740992}',  # beyond 2**53: JCS refuses
        b'{"a":"\\u0041"}',  # an escape JCS does not use
        b'{"a":"\\ud800"}',  # a lone surrogate
        '{"\U0001f600":1,"\ue000":2}'.encode(),  # UTF-16 order puts the emoji first
        b'{"a":1',  # not JSON
        b"NaN",
    ],
)
def test_parse_if_canonical_steps_aside_for_what_it_cannot_vouch_for(data: bytes) -> None:
    assert parse_if_canonical(data) == (False, None)


def test_parse_if_canonical_accepts_a_canonical_entry() -> None:
    data = b'{"a":[true,null,-3],"b":"\\n\\u001f\xc3\xa9\xe2\x80\xa8/"}'
    assert bytes(rfc8785.dumps(orjson.loads(data))) == data
    assert parse_if_canonical(data) == (True, orjson.loads(data))


def test_every_scalar_value_is_escaped_as_the_reference_does() -> None:
    # One string holding every Unicode scalar value, in 64 slices so a
    # failure names its range.
    step = 0x110000 // 64
    for start in range(0, 0x110000, step):
        text = "".join(
            chr(c) for c in range(start, min(start + step, 0x110000)) if not 0xD800 <= c <= 0xDFFF
        )
        assert canonical_json(text) == bytes(rfc8785.dumps(text)), hex(start)


def test_keys_beyond_the_bmp_sort_by_utf16_code_units() -> None:
    value = {"\ue000": 1, "\U0001f600": 2, "a": 3}
    # UTF-16: a (0061) < D83D DE00 (the emoji) < E000.
    assert canonical_json(value) == '{"a":3,"\U0001f600":2,"\ue000":1}'.encode()


def test_lone_surrogate_is_refused_as_the_reference_does() -> None:
    assert _ours({"a": "\ud800"}) == _reference({"a": "\ud800"})
    assert not isinstance(_ours({"a": "\ud800"}), bytes)


def test_deep_nesting_falls_back_to_the_reference() -> None:
    value: Any = []
    for _ in range(300):  # orjson refuses beyond 255 levels
        value = [value]
    assert sys.getrecursionlimit() > 300
    assert canonical_json(value) == bytes(rfc8785.dumps(value))
