"""The fast input path hands rego-cpp exactly the document regopy.Input would."""

from __future__ import annotations

from typing import Any

import pytest
import regopy

from broker.errors import PolicyUnavailableError
from broker.policy import regopy_input

ECHO = "package probe\n\nimport rego.v1\n\necho := input\n"

DOCUMENTS: list[Any] = [
    # Every JSON type, nested.
    {"s": "tekst", "i": -(2**53), "f": 1.5, "t": True, "n": None, "a": [1, [2, {"x": []}]]},
    # Non-ASCII and an empty string survive.
    {"naam": "Zoë ëïü", "leeg": ""},
    # A top-level array and a top-level scalar are inputs too.
    [{"name": "meldingen", "texts": ["a b", "c"]}],
    "alleen tekst",
    # A tuple is a JSON array, as in regopy.
    {"t": (1, 2)},
]


def _echo(document: Any, *, fast: bool) -> Any:
    interpreter = regopy.Interpreter()
    interpreter.add_module("probe.rego", ECHO)
    if fast:
        regopy_input.set_input(interpreter, document)
    else:
        interpreter.set_input(regopy.Input(document))
    output = interpreter.query("data.probe.echo")
    return output[0].expressions[0]


def test_installed_regopy_offers_the_fast_path() -> None:
    # If an upgrade removes a C function, the engine falls back to
    # regopy.Input (slower, same decisions); this test says so loudly.
    assert regopy_input.supported()


@pytest.mark.parametrize("document", DOCUMENTS)
def test_fast_input_equals_regopy_input(document: Any) -> None:
    assert _echo(document, fast=True) == _echo(document, fast=False)


def test_value_that_is_not_json_is_refused() -> None:
    with pytest.raises(PolicyUnavailableError, match="not a JSON value"):
        regopy_input.set_input(regopy.Interpreter(), {"x": object()})
