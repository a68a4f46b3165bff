"""Policy input facts (broker/policy/inputs.py): what Python computes for Rego and what not."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from broker.cases.model import CasePartner, PartnerStatus
from broker.convenant import Convenant
from broker.policy.inputs import (
    MAX_SCANNED_TEXT_CHARS,
    answer_field_facts,
    build_disclosure_input,
    build_exchange_input,
    case_facts,
    period_facts,
)
from broker.policy.normalise import MAX_SCANNED_CHARS
from tests.cases import CARE, OWNER, POLICE, REGISSEUR, T0, make_case

# ---- periods ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        # one day counts as one, not zero
        (date(2026, 5, 4), date(2026, 5, 4), 1),
        # two adjacent days
        (date(2026, 5, 4), date(2026, 5, 5), 2),
        # a common year
        (date(2025, 1, 1), date(2025, 12, 31), 365),
        # a leap year
        (date(2024, 1, 1), date(2024, 12, 31), 366),
        # across a leap day
        (date(2024, 2, 28), date(2024, 3, 1), 3),
        # exactly the police exchange's bound of 730 days
        (date(2024, 5, 5), date(2026, 5, 4), 730),
    ],
)
def test_period_day_count_is_inclusive(start: date, end: date, days: int) -> None:
    assert period_facts(start, end) == {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "days": days,
    }


@pytest.mark.parametrize(
    ("start", "end"),
    [
        # no period asked
        (None, None),
        # only a start
        (date(2026, 1, 1), None),
        # only an end
        (None, date(2026, 1, 1)),
    ],
)
def test_incomplete_period_is_no_period(start: date | None, end: date | None) -> None:
    assert period_facts(start, end) is None


# ---- answer fields -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "texts"),
    [
        # a plain string, normalised
        ("Ernstige  OVERLAST, 3x!", ["ernstige overlast 3x"]),
        # no text at all
        (12, []),
        # booleans and null carry no text
        ([True, None, 3.5], []),
        # strings inside a list of objects, in order
        (
            [{"datum": "2026-03-01", "omschrijving": "Geluid"}, {"omschrijving": "Ruzie"}],
            ["2026 03 01", "geluid", "ruzie"],
        ),
        # deeply nested text is found too
        ({"a": {"b": [[{"c": "Diep"}]]}}, ["diep"]),
        # a tuple counts as a list
        (("Één", "twee"), ["een", "twee"]),
        # disguised text reaches the scan in its plain form
        ("p\u200bsy\u00adchose", ["psychose"]),
    ],
)
def test_every_string_in_the_answer_is_collected_and_normalised(
    value: Any, texts: list[str]
) -> None:
    facts = answer_field_facts("meldingen", "nuisance", value)
    assert facts == {
        "name": "meldingen",
        "category": "nuisance",
        "boolean": None,
        "texts": texts,
        "oversized": False,
    }


@pytest.mark.parametrize(
    ("value", "boolean"),
    [
        # a yes/no answer reaches the policy as it is
        (True, True),
        # so does no
        (False, False),
        # a number is not a yes/no answer, even 1
        (1, None),
        # nor 0
        (0, None),
        # nor a list holding a boolean
        ([True], None),
        # nor the word "true"
        ("true", None),
    ],
)
def test_only_a_boolean_answer_is_passed_as_a_value(value: Any, boolean: bool | None) -> None:
    assert answer_field_facts("bekend", "care_relation", value)["boolean"] is boolean


def test_keys_of_an_object_are_not_scanned_as_text() -> None:
    # The adapter's keys are its schema; only values carry what a person wrote.
    facts = answer_field_facts("notities", "free_text", {"Psychose": "rustig"})
    assert facts["texts"] == ["rustig"]


@pytest.mark.parametrize(
    ("value", "oversized"),
    [
        # five notes at the per-text bound reach the field bound exactly
        (["x" * MAX_SCANNED_CHARS] * 5, False),
        # one character more tips the field over
        (["x" * MAX_SCANNED_CHARS] * 5 + ["y"], True),
        # many short notes add up
        ([{"notitie": "z" * 100}] * (MAX_SCANNED_TEXT_CHARS // 100 + 1), True),
    ],
)
def test_field_with_more_text_than_the_scan_bound_is_marked_oversized_without_texts(
    value: Any, oversized: bool
) -> None:
    assert sum(len(s) for s in _all_strings(value)) > MAX_SCANNED_TEXT_CHARS or not oversized
    facts = answer_field_facts("notities", "free_text", value)
    assert facts["oversized"] is oversized
    if oversized:
        # Nothing of it goes to the scan; the field must be withheld whole.
        assert facts["texts"] == []
    else:
        assert len(facts["texts"]) == len(value)


@pytest.mark.parametrize(
    "value",
    [
        # one long note, far below the field bound
        "x" * (MAX_SCANNED_CHARS + 1),
        # a short note that NFKC expands eighteenfold (U+FDFA) past the bound
        "\ufdfa" * 300,
        # a short note beside a long one: the field goes whole, short note included
        ["kort", "x" * (MAX_SCANNED_CHARS + 1)],
    ],
    ids=["long-note", "nfkc-expanding", "short-and-long"],
)
def test_single_text_too_long_to_scan_is_marked_oversized(value: Any) -> None:
    assert sum(len(s) for s in _all_strings(value)) <= MAX_SCANNED_TEXT_CHARS
    facts = answer_field_facts("notities", "free_text", value)
    assert facts["oversized"] is True
    assert facts["texts"] == []


def _all_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _all_strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _all_strings(v)]
    return []


# ---- case facts --------------------------------------------------------------------


def test_no_case_gives_no_case_facts(convenant: Convenant) -> None:
    assert case_facts(None, convenant) is None


def test_case_facts_have_the_documented_shape(convenant: Convenant) -> None:
    case = make_case(
        partners=(
            CasePartner(REGISSEUR, PartnerStatus.actief, T0),
            CasePartner(POLICE, PartnerStatus.teruggetrokken, T0),
            CasePartner(OWNER, PartnerStatus.uitgenodigd, T0),
            CasePartner(CARE, PartnerStatus.actief, T0),
            # a partner the convenant no longer lists
            CasePartner("woonbedrijf-oud", PartnerStatus.actief, T0),
        )
    )
    assert case_facts(case, convenant) == {
        "id": case.id,
        "kind": "complex",
        "status": "aangemeld",
        "regisseur": REGISSEUR,
        "dwelling_owner": OWNER,
        "consent": "pending",
        "criteria": [1, 2, 6],
        "partners": [
            {"partner": REGISSEUR, "role": "gemeente", "function": None, "status": "actief"},
            {"partner": POLICE, "role": "politie", "function": None, "status": "teruggetrokken"},
            {"partner": OWNER, "role": "corporatie", "function": None, "status": "uitgenodigd"},
            {"partner": CARE, "role": "zorg", "function": "buurtteam", "status": "actief"},
            {"partner": "woonbedrijf-oud", "role": None, "function": None, "status": "actief"},
        ],
        "subjects": [
            {"ref": "og-1", "role": "overlastgever"},
            {"ref": "m-1", "role": "melder"},
        ],
        "events": [],
        "urgent": False,
    }


def test_policy_input_carries_no_personal_data(convenant: Convenant) -> None:
    case = make_case()
    exchange = build_exchange_input(
        exchange_id="ex_1",
        query="politie.meldingen",
        purpose="aanpak_woonoverlast",
        period=period_facts(date(2026, 1, 1), date(2026, 5, 4)),
        requester={"partner": REGISSEUR, "role": "gemeente", "function": None},
        case=case_facts(case, convenant),
        subject_ref="og-1",
    )
    document = build_disclosure_input(
        exchange,
        provider={"partner": POLICE, "role": "politie", "function": None},
        subject_known=True,
        fields=[answer_field_facts("meldingen_aantal", "nuisance", 4)],
    )
    text = repr(document)
    assert case.address is not None
    for subject in case.subjects:
        assert subject.name is not None and subject.birth_date is not None
        assert subject.name not in text
        assert subject.birth_date.isoformat() not in text
    assert case.address.postcode not in text
    assert case.address.plaats not in text
    assert document["subject"] == {"ref": "og-1"}
    assert document["answer"] == {
        "subject_known": True,
        "fields": [
            {
                "name": "meldingen_aantal",
                "category": "nuisance",
                "boolean": None,
                "texts": [],
                "oversized": False,
            }
        ],
    }
