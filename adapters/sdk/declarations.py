"""Field declarations: which fields an adapter answers, and in which data category.

What it does: lets each adapter state, per exchange type it serves, every
field its system can put in an answer together with that field's
`DataCategory`, and checks an answer against that statement before it is
signed.

What it does not: decide what may flow. An adapter declares honestly what it
holds, special categories included; the broker filters (R1, R2). The check
here only stops a source from answering a field it never declared, or under
another category than declared, so the declaration the broker reads is the
truth about the answers it gets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import JsonValue

from broker.adapter_protocol import (
    SPECIAL_CATEGORIES,
    AdapterAnswer,
    AdapterQuery,
    AnswerField,
    DataCategory,
)


@dataclass(frozen=True)
class FieldDeclaration:
    name: str
    category: DataCategory

    @property
    def special(self) -> bool:
        return self.category in SPECIAL_CATEGORIES


# exchange type id (e.g. "politie.meldingen") -> the fields answered for it
Declarations = Mapping[str, Sequence[FieldDeclaration]]


class UndeclaredAnswerError(Exception):
    """A source answered outside its declaration: a bug in the adapter, never sent."""


def verify_answer_declared(
    answer: AdapterAnswer, *, query: AdapterQuery, declarations: Declarations
) -> None:
    """Raise UndeclaredAnswerError unless the answer echoes `query` and is declared.

    Every answered field must be declared for the query's exchange type, under
    the category declared for it.
    """
    if answer.exchange != query.exchange or answer.query != query.query:
        raise UndeclaredAnswerError("expected the answer to echo the query's exchange and type")
    declared = declarations.get(answer.query)
    if declared is None:
        raise UndeclaredAnswerError(f"expected a declared exchange type, got {answer.query!r}")
    categories = {field.name: field.category for field in declared}
    for name, field in answer.fields.items():
        expected = categories.get(name)
        if expected is None:
            raise UndeclaredAnswerError(f"field {name!r} is not declared for {answer.query!r}")
        if field.category is not expected:
            raise UndeclaredAnswerError(
                f"field {name!r}: expected category {expected.value!r},"
                f" got {field.category.value!r}"
            )


def build_answer(
    query: AdapterQuery,
    *,
    subject_known: bool,
    values: Mapping[str, JsonValue],
    declared: Sequence[FieldDeclaration],
) -> AdapterAnswer:
    """An answer to `query` whose categories come from the declaration, not the caller.

    One source of truth for a field's category: a source names values, the
    declaration says what kind of data each is. An undeclared name raises.
    """
    categories = {field.name: field.category for field in declared}
    fields = {}
    for name, value in values.items():
        category = categories.get(name)
        if category is None:
            raise UndeclaredAnswerError(f"field {name!r} is not declared for {query.query!r}")
        fields[name] = AnswerField(category=category, value=value)
    return AdapterAnswer(
        exchange=query.exchange, query=query.query, subject_known=subject_known, fields=fields
    )


def declarations_document(partner_id: str, declarations: Declarations) -> dict[str, object]:
    """The public `GET /v1/declaration` body: names and categories, never values."""
    return {
        "partner": partner_id,
        "exchanges": {
            exchange: [
                {"name": f.name, "category": f.category.value, "special": f.special} for f in fields
            ]
            for exchange, fields in sorted(declarations.items())
        },
    }
