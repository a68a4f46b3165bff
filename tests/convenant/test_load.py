"""Loading a convenant: the example loads, and every broken variant names what is wrong and where.

Each broken variant starts from the example file (read with yaml.safe_load),
changes one thing, and is written back to disk, so `load_convenant` meets it
exactly as it would meet a file a person edited.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.convenant import Convenant, PartnerRole, load_convenant, parse_convenant
from broker.convenant.load import MAX_CONVENANT_BYTES
from broker.errors import ConvenantError
from tests.conftest import EXAMPLE_CONVENANT

Mutation = Callable[[dict[str, Any]], None]


def example_document() -> dict[str, Any]:
    document = yaml.safe_load(EXAMPLE_CONVENANT.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def write_yaml(path: Path, document: Any) -> Path:
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False))
    return path


def test_example_convenant_loads_with_its_partners_and_terms(convenant: Convenant) -> None:
    assert convenant.id == "convenant-woonoverlast-lekstroom"
    assert convenant.valid_from == date(2026, 1, 1)
    assert [p.id for p in convenant.partners if p.regisseur] == ["gemeente-lekstroom"]
    assert {p.role for p in convenant.partners} == set(PartnerRole)
    assert convenant.principal_ids()[-1] == "fg-lekstroom"
    assert convenant.scopes_for("fg-lekstroom") == {"audit:read"}
    assert convenant.scopes_for("nobody") == frozenset()
    exchange = convenant.exchange("politie.meldingen")
    assert exchange is not None
    assert exchange.regisseur_only
    assert convenant.complex_case_criteria.minimum == 2
    assert convenant.terms.deadlines.corporation_consent_days == 3


def test_round_tripped_example_loads_the_same(tmp_path: Path, convenant: Convenant) -> None:
    """The mutation tests start from a rewrite of the example; unchanged, it must load the same."""
    assert load_convenant(write_yaml(tmp_path / "same.yaml", example_document())) == convenant


def test_json_convenant_loads_like_yaml(tmp_path: Path, convenant: Convenant) -> None:
    path = tmp_path / "lekstroom.json"
    path.write_text(json.dumps(example_document(), default=str))
    assert load_convenant(path) == convenant


def _set(path: str, value: Any) -> Mutation:
    """Set the value at a dotted path (list indexes as numbers)."""

    def mutate(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _duplicate_partner(document: dict[str, Any]) -> None:
    document["partners"].append({**document["partners"][1], "name": "Tweede politie"})


def _auditor_with_partner_id(document: dict[str, Any]) -> None:
    document["auditors"][0]["id"] = "politie-lekstroom"


def _no_regisseur(document: dict[str, Any]) -> None:
    for partner in document["partners"]:
        partner.pop("regisseur", None)


def _duplicate_exchange(document: dict[str, Any]) -> None:
    document["exchanges"].append(document["exchanges"][0])


def _drop(key: str) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        del document[key]

    return mutate


BROKEN: list[Any] = [
    # an unknown key on a partner, e.g. a typo or a field the schema lacks
    pytest.param(_set("partners.0.colour", "blauw"), r"partners\.0\.colour", id="unknown-key"),
    # an unknown key at the top
    pytest.param(_set("signed_by", "wethouder"), r"signed_by", id="unknown-top-key"),
    # a role the broker has no rules for
    pytest.param(_set("partners.1.role", "boa"), r"partners\.1\.role", id="bad-role"),
    # a partner id that would not be safe in URLs and log lines
    pytest.param(_set("partners.2.id", "Woon Stichting"), r"partners\.2\.id", id="bad-id"),
    # regisseur must be a boolean, not a name
    pytest.param(
        _set("partners.0.regisseur", "ja graag"), r"partners\.0\.regisseur", id="regisseur"
    ),
    # the same partner twice
    pytest.param(_duplicate_partner, r"duplicates \['politie-lekstroom'\]", id="duplicate-partner"),
    # an auditor that shares a partner's id would get the partner's keys
    pytest.param(_auditor_with_partner_id, r"'politie-lekstroom'", id="auditor-id-clash"),
    # nobody may register cases
    pytest.param(_no_regisseur, r"regisseur: true", id="no-regisseur"),
    # scopes for a role that does not exist
    pytest.param(_set("scopes.burgemeester", ["exchange"]), r"burgemeester", id="scope-role"),
    # a scope the broker does not have
    pytest.param(_set("scopes.zorg", ["cases:read", "admin"]), r"scopes\.zorg\.1", id="bad-scope"),
    # an auditor working for an organisation outside the convenant
    pytest.param(
        _set("auditors.0.organisation", "gemeente-elders"),
        r"organisation 'gemeente-elders'",
        id="auditor-organisation",
    ),
    # a minimum no case can ever reach
    pytest.param(
        _set("complex_case_criteria.minimum", 7),
        r"complex_case_criteria: .*minimum 7 exceeds the 6",
        id="criteria-minimum",
    ),
    # an agreement that ends before it starts
    pytest.param(_set("valid_until", date(2025, 12, 31)), r"valid_until", id="valid-until"),
    # a purpose other than nuisance (purpose limitation)
    pytest.param(_set("purpose", "opsporing"), r"purpose", id="purpose"),
    # two exchange types with one id
    pytest.param(_duplicate_exchange, r"exchange ids", id="duplicate-exchange"),
    # an exchange type without fields
    pytest.param(_set("exchanges.0.fields", []), r"exchanges\.0\.fields", id="no-fields"),
    # a period bound beyond ten years
    pytest.param(
        _set("exchanges.1.max_period_days", 99999),
        r"exchanges\.1\.max_period_days",
        id="period-bound",
    ),
    # a retention term missing
    pytest.param(
        _set("terms.retention", {"closed_case_years": 5}),
        r"terms\.retention\.not_complex_working_days",
        id="missing-term",
    ),
    # no partners at all
    pytest.param(_drop("partners"), r"partners: Field required", id="no-partners"),
]


@pytest.mark.parametrize(("mutate", "where"), BROKEN)
def test_broken_convenant_is_refused_naming_the_bad_key(
    tmp_path: Path, mutate: Mutation, where: str
) -> None:
    document = example_document()
    mutate(document)
    path = write_yaml(tmp_path / "broken.yaml", document)
    with pytest.raises(ConvenantError, match=where):
        load_convenant(path)


@pytest.mark.parametrize(
    ("content", "where"),
    [
        # YAML that does not parse
        (b"id: [unclosed\npartners: {", r"broken\.yaml is not valid yaml"),
        # a list where the mapping belongs
        (b"- id: convenant\n- version: 1\n", r"mapping at the top level, got list"),
        # a scalar
        (b"just a sentence\n", r"mapping at the top level, got str"),
        # an empty file
        (b"", r"mapping at the top level, got NoneType"),
        # a Python object tag, which safe_load refuses to build
        (b"!!python/object/apply:os.system ['true']\n", r"not valid yaml"),
    ],
)
def test_file_that_is_not_a_yaml_mapping_is_refused(
    tmp_path: Path, content: bytes, where: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_bytes(content)
    with pytest.raises(ConvenantError, match=where):
        load_convenant(path)


def test_invalid_json_convenant_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"id": "x",')
    with pytest.raises(ConvenantError, match=r"broken\.json is not valid json"):
        load_convenant(path)


def test_oversize_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    raw = EXAMPLE_CONVENANT.read_bytes()
    # A valid convenant padded with a comment: only the size is wrong.
    padded = raw + b"#" + b"x" * (MAX_CONVENANT_BYTES - len(raw)) + b"\n"
    path.write_bytes(padded)
    with pytest.raises(ConvenantError, match=f"at most {MAX_CONVENANT_BYTES} bytes"):
        load_convenant(path)
    path.write_bytes(padded[: MAX_CONVENANT_BYTES - 1] + b"\n")
    assert load_convenant(path).id == "convenant-woonoverlast-lekstroom"


def test_every_problem_is_reported_at_once() -> None:
    document = example_document()
    document["partners"][0]["colour"] = "blauw"
    document["exchanges"][2]["fields"] = []
    with pytest.raises(ConvenantError) as caught:
        parse_convenant(document)
    message = str(caught.value)
    assert "partners.0.colour" in message
    assert "exchanges.2.fields" in message
