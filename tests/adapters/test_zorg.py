"""The zorg adapters over real HTTP: "known, and by whom", plus the health data that never flows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from adapters.runner import RunningServer
from broker.adapter_protocol import DataCategory
from broker.keys import KeyStore
from tests.adapters.helpers import (
    FATIMA,
    JOOP,
    MARCO,
    Person,
    ask,
    assert_problem,
    call_token,
    make_query,
    post_query,
)

BUURTTEAM = "buurtteam-lekstroom"
GGD = "ggd-lekstroom"

UrlFor = Callable[[str], str]
QUERY_OF = {BUURTTEAM: "buurtteam.bekendheid", GGD: "ggd.bekendheid"}


@pytest.fixture(scope="module")
def url_for(adapter_server: Callable[[str, str], RunningServer]) -> UrlFor:
    return lambda partner_id: adapter_server("zorg", partner_id).url


@pytest.mark.parametrize(
    ("partner_id", "field", "category"),
    [
        (BUURTTEAM, "bekend", DataCategory.care_relation),
        (BUURTTEAM, "hulpverlener_naam", DataCategory.care_relation),
        (BUURTTEAM, "diagnose", DataCategory.health),
        (BUURTTEAM, "behandelplan", DataCategory.health),
        (BUURTTEAM, "notities", DataCategory.free_text),
        (GGD, "bekend", DataCategory.care_relation),
        (GGD, "hulpverlener_naam", DataCategory.care_relation),
        (GGD, "diagnose", DataCategory.health),
        (GGD, "medicatie", DataCategory.health),
    ],
)
def test_known_client_is_answered_with_every_field_in_its_category(
    url_for: UrlFor, keystore: KeyStore, partner_id: str, field: str, category: DataCategory
) -> None:
    query = make_query(QUERY_OF[partner_id], MARCO)
    answer = ask(url_for(partner_id), keystore, partner_id=partner_id, query=query)
    assert answer.subject_known is True
    assert answer.fields[field].category is category


@pytest.mark.parametrize(
    ("partner_id", "person", "care_worker"),
    [
        (BUURTTEAM, MARCO, "Ilse Jansen"),
        (BUURTTEAM, FATIMA, "Kees Smit"),
        (GGD, MARCO, "dr. Petra Kok"),
    ],
)
def test_known_client_is_answered_with_their_care_worker(
    url_for: UrlFor, keystore: KeyStore, partner_id: str, person: Person, care_worker: str
) -> None:
    query = make_query(QUERY_OF[partner_id], person)
    answer = ask(url_for(partner_id), keystore, partner_id=partner_id, query=query)
    assert answer.fields["bekend"].value is True
    assert answer.fields["hulpverlener_naam"].value == care_worker


def test_health_data_is_in_the_raw_answer(url_for: UrlFor, keystore: KeyStore) -> None:
    # The source answers everything it holds; the broker must filter it (R2, R4).
    buurtteam = ask(
        url_for(BUURTTEAM),
        keystore,
        partner_id=BUURTTEAM,
        query=make_query("buurtteam.bekendheid", MARCO),
    )
    ggd = ask(url_for(GGD), keystore, partner_id=GGD, query=make_query("ggd.bekendheid", MARCO))
    assert buurtteam.fields["diagnose"].value == "verslavingsproblematiek"
    assert ggd.fields["diagnose"].value == "psychotische stoornis"
    assert "medicatie" in ggd.fields


@pytest.mark.parametrize(
    ("partner_id", "query", "person"),
    [
        (BUURTTEAM, "buurtteam.bekendheid", JOOP),
        (GGD, "ggd.bekendheid", FATIMA),
        (GGD, "ggd.bekendheid", JOOP),
    ],
)
def test_unknown_person_is_answered_with_bekend_false_only(
    url_for: UrlFor, keystore: KeyStore, partner_id: str, query: str, person: Person
) -> None:
    answer = ask(
        url_for(partner_id), keystore, partner_id=partner_id, query=make_query(query, person)
    )
    assert answer.subject_known is False
    assert set(answer.fields) == {"bekend"}
    assert answer.fields["bekend"].value is False
    assert answer.fields["bekend"].category is DataCategory.care_relation


def test_client_whose_care_lies_outside_the_period_is_not_known_in_it(
    url_for: UrlFor, keystore: KeyStore
) -> None:
    # The GGD trajectory starts 2026-06-05.
    query = make_query("ggd.bekendheid", MARCO, period=(date(2025, 1, 1), date(2025, 12, 31)))
    answer = ask(url_for(GGD), keystore, partner_id=GGD, query=query)
    assert answer.subject_known is False
    assert set(answer.fields) == {"bekend"}


def test_period_bounds_progress_notes(url_for: UrlFor, keystore: KeyStore) -> None:
    query = make_query("buurtteam.bekendheid", MARCO, period=(date(2026, 1, 1), date(2026, 6, 30)))
    notities = (
        ask(url_for(BUURTTEAM), keystore, partner_id=BUURTTEAM, query=query)
        .fields["notities"]
        .value
    )
    assert isinstance(notities, list)
    assert [n["datum"] for n in notities if isinstance(n, dict)] == ["2026-03-12"]


@pytest.mark.parametrize(
    ("partner_id", "query"),
    [
        (BUURTTEAM, "ggd.bekendheid"),  # the buurtteam does not speak for the GGD
        (GGD, "buurtteam.bekendheid"),
    ],
)
def test_care_party_does_not_answer_another_care_partys_question(
    url_for: UrlFor, keystore: KeyStore, partner_id: str, query: str
) -> None:
    body = make_query(query, MARCO).to_body()
    response = post_query(
        url_for(partner_id), body, token=call_token(keystore, partner_id=partner_id, body=body)
    )
    assert_problem(response, status=404, code="query_not_served")
