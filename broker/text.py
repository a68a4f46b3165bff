"""Free text from outside: one rule for every field that carries it.

Control characters (NUL, CR/LF, ESC), bidirectional overrides and zero-width
characters are refused: they hide text from a reader, split log lines, or
cut strings short in C-based engines. `str.isprintable` is exactly that set
(Unicode categories C* and Z* other than the space).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def _printable(value: str) -> str:
    if not value.isprintable():
        raise ValueError("text must not contain control or invisible characters")
    return value


PrintableText = Annotated[str, AfterValidator(_printable)]
