"""The gemeente adapter over real HTTP: measures, and the social-domain data it must not send."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from adapters.runner import RunningServer
from broker.adapter_protocol import SPECIAL_CATEGORIES, DataCategory
from broker.keys import KeyStore
from tests.adapters.helpers import AHMET, FATIMA, JOOP, MARCO, SANNE, Person, ask, make_query

PARTNER = "gemeente-lekstroom"
QUERY = "gemeente.maatregelen"


@pytest.fixture(scope="module")
def url(adapter_server: Callable[[str, str], RunningServer]) -> str:
    return adapter_server("gemeente", PARTNER).url


@pytest.mark.parametrize(
    ("field", "category"),
    [
        ("maatregelen", DataCategory.enforcement),
        ("gedragsaanwijzing_151d", DataCategory.enforcement),
        ("waarschuwingsbrieven_aantal", DataCategory.enforcement),
        # linked social-domain record: income and health, never to flow
        ("bijstandsuitkering", DataCategory.financial),
        ("wmo_indicatie", DataCategory.health),
        ("schuldhulp", DataCategory.financial),
        ("notities", DataCategory.free_text),
    ],
)
def test_known_overlastgever_is_answered_with_every_field_in_its_category(
    url: str, keystore: KeyStore, field: str, category: DataCategory
) -> None:
    answer = ask(url, keystore, partner_id=PARTNER, query=make_query(QUERY, MARCO))
    assert answer.subject_known is True
    assert answer.fields[field].category is category


def test_case_system_contents_for_marco(url: str, keystore: KeyStore) -> None:
    fields = ask(url, keystore, partner_id=PARTNER, query=make_query(QUERY, MARCO)).fields
    assert fields["maatregelen"].value == [
        {"datum": "2025-09-15", "soort": "waarschuwingsbrief"},
        {"datum": "2026-03-02", "soort": "waarschuwingsbrief"},
        {"datum": "2026-06-20", "soort": "gesprek burgemeester"},
    ]
    assert fields["waarschuwingsbrieven_aantal"].value == 2
    assert fields["gedragsaanwijzing_151d"].value is False


def test_subject_without_social_domain_record_gets_no_special_fields(
    url: str, keystore: KeyStore
) -> None:
    fields = ask(url, keystore, partner_id=PARTNER, query=make_query(QUERY, SANNE)).fields
    assert fields["waarschuwingsbrieven_aantal"].value == 1
    assert not any(f.category in SPECIAL_CATEGORIES for f in fields.values())


@pytest.mark.parametrize("person", [FATIMA, JOOP, AHMET])
def test_person_without_a_case_is_unknown_with_no_fields(
    url: str, keystore: KeyStore, person: Person
) -> None:
    answer = ask(url, keystore, partner_id=PARTNER, query=make_query(QUERY, person))
    assert answer.subject_known is False
    assert answer.fields == {}


def test_period_bounds_measures_and_the_letter_count(url: str, keystore: KeyStore) -> None:
    query = make_query(QUERY, MARCO, period=(date(2026, 1, 1), date(2026, 12, 31)))
    fields = ask(url, keystore, partner_id=PARTNER, query=query).fields
    assert fields["maatregelen"].value == [
        {"datum": "2026-03-02", "soort": "waarschuwingsbrief"},
        {"datum": "2026-06-20", "soort": "gesprek burgemeester"},
    ]
    assert fields["waarschuwingsbrieven_aantal"].value == 1
    notities = fields["notities"].value
    assert isinstance(notities, list)
    assert all(isinstance(n, dict) and str(n["datum"]).startswith("2026") for n in notities)
