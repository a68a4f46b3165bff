"""Hand a policy input document to rego-cpp with fewer foreign calls than regopy.Input.

What it does: `set_input(interpreter, document)` builds the input document
node by node through rego-cpp's C API (the `regoInput*` functions regopy
itself wraps) and sets it as the interpreter's input, then frees the
builder, as `Interpreter.set_input(regopy.Input(document))` does.

Why: converting the input was a third of an exchange decision. regopy's
converter calls a Python wrapper per JSON node, copies every string into a
ctypes buffer and tests each value against the `collections.abc` classes.
This one dispatches on the exact built-in type and calls the C functions
directly; the exchange input converts in about 60 % of the time
(docs/performance.md).

What it does not: accept anything but JSON values built from dict, list,
tuple, str, int, float, bool and None, already checked by
`check_policy_input` (no NUL in strings, integers within ±2**53). It uses
regopy's ctypes handle (`regopy.rego_shared.rego`), which is not regopy's
public API: `supported()` checks for every function it needs, and the
engine falls back to `regopy.Input` when one is missing, so a regopy
upgrade can make decisions slower but never different.
"""

from __future__ import annotations

from typing import Any

import regopy

from broker.errors import PolicyUnavailableError

_NAMES = (
    "regoNewInput",
    "regoFreeInput",
    "regoSetInput",
    "regoInputString",
    "regoInputInt",
    "regoInputFloat",
    "regoInputBoolean",
    "regoInputNull",
    "regoInputObjectItem",
    "regoInputObject",
    "regoInputArray",
)

try:
    from regopy import rego_shared as _shared

    _LIB: Any = _shared.rego
except (ImportError, AttributeError):  # pragma: no cover - another regopy layout
    _LIB = None


def supported() -> bool:
    """Whether the installed regopy exposes every C function this module calls."""
    return _LIB is not None and all(hasattr(_LIB, name) for name in _NAMES)


def _build(builder: Any, value: Any) -> int:  # noqa: PLR0911  # one return per JSON type
    """Push `value` onto the input builder; the OR of every call's status (0 is OK)."""
    lib = _LIB
    kind = type(value)
    if kind is str:
        return int(lib.regoInputString(builder, value.encode("utf-8")))
    if kind is dict:
        status = 0
        for key, item in value.items():
            status |= _build(builder, key)
            status |= _build(builder, item)
            status |= lib.regoInputObjectItem(builder)
        return status | int(lib.regoInputObject(builder, len(value)))
    if kind is list or kind is tuple:
        status = 0
        for item in value:
            status |= _build(builder, item)
        return status | int(lib.regoInputArray(builder, len(value)))
    if kind is bool:
        return int(lib.regoInputBoolean(builder, value))
    if kind is int:
        return int(lib.regoInputInt(builder, value))
    if kind is float:
        return int(lib.regoInputFloat(builder, value))
    if value is None:
        return int(lib.regoInputNull(builder))
    raise PolicyUnavailableError(f"input: {kind.__name__} is not a JSON value")


def set_input(interpreter: regopy.Interpreter, document: Any) -> None:
    """Make `document` the input of `interpreter`; raise PolicyUnavailableError if refused."""
    builder = _LIB.regoNewInput()
    try:
        status = _build(builder, document)
        if status == 0:
            status = int(_LIB.regoSetInput(interpreter._impl, builder))
    finally:
        _LIB.regoFreeInput(builder)
    if status != 0:
        raise PolicyUnavailableError(f"rego-cpp refused the input document (status {status})")
