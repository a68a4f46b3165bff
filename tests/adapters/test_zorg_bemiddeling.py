"""The zorg adapter serving buurtbemiddeling, over real HTTP on loopback.

What it covers: the mediation register answers `buurtbemiddeling.terugkoppeling`
with every field it holds, each in its declared category and under a valid
answer signature (the convenant's three fields and the never-to-flow ones:
the other party's name, the mediator, the talk reports); unknown people and
people whose mediation lies outside the period are answered "not registered"
only; the app picks the source by the register's `organisatie.soort`; the
adapter answers no other care party's question.

What it does not: the broker's filtering (R2, R4 consent of both parties),
which the policy and e2e tests cover. Here the raw answer must hold everything,
so those tests have something to filter.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from adapters.registry import ADAPTERS, adapter_for_partner
from adapters.runner import RunningServer
from adapters.zorg.app import DATA_DIR, build_app, load_source
from adapters.zorg.bemiddeling_source import BemiddelingSource
from adapters.zorg.source import ZorgSource
from broker.adapter_protocol import DataCategory
from broker.convenant import Convenant
from broker.keys import KeyStore
from tests.adapters.helpers import (
    AHMET,
    FATIMA,
    JOOP,
    MARCO,
    SANNE,
    STRANGER,
    Person,
    ask,
    assert_problem,
    call_token,
    make_query,
    post_query,
)

BEMIDDELING = "buurtbemiddeling-lekstroom"
QUERY = "buurtbemiddeling.terugkoppeling"
FIXTURE = DATA_DIR / f"{BEMIDDELING}.json"

CATEGORIES = {
    "aangemeld_bij_bemiddeling": DataCategory.care_relation,
    "bemiddeling_status": DataCategory.care_relation,
    "afspraken": DataCategory.free_text,
    "dossiernummer": DataCategory.care_relation,
    "aanmelddatum": DataCategory.care_relation,
    "partijen": DataCategory.identity,
    "bemiddelaar": DataCategory.care_relation,
    "gespreksverslagen": DataCategory.free_text,
}


@pytest.fixture(scope="module")
def url(adapter_server: Callable[[str, str], RunningServer]) -> str:
    return adapter_server("zorg", BEMIDDELING).url


def _texts(value: object) -> list[str]:
    assert isinstance(value, list)
    return [str(item["tekst"]) for item in value if isinstance(item, dict)]


def _dates(value: object) -> list[str]:
    assert isinstance(value, list)
    return [str(item["datum"]) for item in value if isinstance(item, dict)]


# --- known parties -----------------------------------------------------------------


@pytest.mark.parametrize("person", [MARCO, FATIMA, SANNE, AHMET])
def test_party_is_answered_with_every_declared_field_in_its_category(
    url: str, keystore: KeyStore, person: Person
) -> None:
    # `ask` verifies the detached signature with the partner's pinned key.
    answer = ask(url, keystore, partner_id=BEMIDDELING, query=make_query(QUERY, person))
    assert answer.subject_known is True
    assert {name: f.category for name, f in answer.fields.items()} == CATEGORIES
    assert answer.fields["aangemeld_bij_bemiddeling"].value is True


@pytest.mark.parametrize("person", [MARCO, FATIMA])
def test_both_parties_of_case_a_see_one_running_mediation(
    url: str, keystore: KeyStore, person: Person
) -> None:
    answer = ask(url, keystore, partner_id=BEMIDDELING, query=make_query(QUERY, person))
    assert answer.fields["dossiernummer"].value == "BB-2026-0031"
    assert answer.fields["bemiddeling_status"].value == "gesprekken lopen"
    assert answer.fields["afspraken"].value == [
        "geen harde muziek na 22.00 uur",
        "contact via bemiddelaar",
    ]
    assert answer.fields["bemiddelaar"].value == "Henk van Dam"


@pytest.mark.parametrize("person", [SANNE, AHMET])
def test_both_parties_of_case_b_see_a_broken_off_mediation(
    url: str, keystore: KeyStore, person: Person
) -> None:
    answer = ask(url, keystore, partner_id=BEMIDDELING, query=make_query(QUERY, person))
    assert answer.fields["bemiddeling_status"].value == "afgebroken"
    assert answer.fields["afspraken"].value == []
    assert answer.fields["aanmelddatum"].value == "2025-03-17"


def test_raw_answer_names_the_other_party_and_holds_the_talk_reports(
    url: str, keystore: KeyStore
) -> None:
    # Everything the dossier holds, including what must never flow: the
    # melder's name to a question about the overlastgever (R2, 002 §3.7.9)
    # and a report that speaks of the overlastgever's health (R2). The
    # broker filters; the adapter does not.
    answer = ask(url, keystore, partner_id=BEMIDDELING, query=make_query(QUERY, MARCO))
    assert answer.fields["partijen"].value == [
        {"naam": "Fatima el Amrani", "rol": "aanmelder"},
        {"naam": "Marco de Wit", "rol": "andere partij"},
    ]
    assert any("depressief" in t for t in _texts(answer.fields["gespreksverslagen"].value))


# --- unknown people -----------------------------------------------------------------


NAMESAKE = ("Marco de Wit", date(1980, 3, 14), "overlastgever", MARCO[3])


@pytest.mark.parametrize("person", [JOOP, STRANGER, NAMESAKE])
def test_unknown_person_is_answered_with_not_registered_only(
    url: str, keystore: KeyStore, person: Person
) -> None:
    answer = ask(url, keystore, partner_id=BEMIDDELING, query=make_query(QUERY, person))
    assert answer.subject_known is False
    assert set(answer.fields) == {"aangemeld_bij_bemiddeling"}
    assert answer.fields["aangemeld_bij_bemiddeling"].value is False
    assert answer.fields["aangemeld_bij_bemiddeling"].category is DataCategory.care_relation


# --- period -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("person", "period"),
    [
        (MARCO, (date(2025, 1, 1), date(2025, 12, 31))),  # registered 2026-04-08
        (SANNE, (date(2026, 1, 1), date(2026, 11, 20))),  # ended 2025-06-02
        (AHMET, (date(2025, 6, 3), date(2025, 12, 31))),  # the day after it ended
    ],
)
def test_mediation_outside_the_period_is_not_registered_in_it(
    url: str, keystore: KeyStore, person: Person, period: tuple[date, date]
) -> None:
    query = make_query(QUERY, person, period=period)
    answer = ask(url, keystore, partner_id=BEMIDDELING, query=query)
    assert answer.subject_known is False
    assert set(answer.fields) == {"aangemeld_bij_bemiddeling"}


def test_mediation_ending_on_the_periods_first_day_overlaps_it(
    url: str, keystore: KeyStore
) -> None:
    query = make_query(QUERY, SANNE, period=(date(2025, 6, 2), date(2025, 12, 31)))
    answer = ask(url, keystore, partner_id=BEMIDDELING, query=query)
    assert answer.subject_known is True
    assert _dates(answer.fields["gespreksverslagen"].value) == ["2025-06-02"]


def test_period_bounds_the_talk_reports(url: str, keystore: KeyStore) -> None:
    query = make_query(QUERY, FATIMA, period=(date(2026, 1, 1), date(2026, 4, 30)))
    answer = ask(url, keystore, partner_id=BEMIDDELING, query=query)
    assert answer.fields["bemiddeling_status"].value == "gesprekken lopen"
    assert _dates(answer.fields["gespreksverslagen"].value) == ["2026-04-22"]


# --- registry and dispatch ---------------------------------------------------------


def test_registry_finds_the_zorg_kind_and_fixture(convenant: Convenant) -> None:
    adapter = adapter_for_partner(convenant, BEMIDDELING)
    assert adapter is ADAPTERS["zorg"]
    assert adapter.fixture_path(BEMIDDELING) == FIXTURE


def test_source_is_chosen_by_the_registers_soort() -> None:
    assert isinstance(load_source(FIXTURE), BemiddelingSource)
    assert isinstance(load_source(DATA_DIR / "buurtteam-lekstroom.json"), ZorgSource)
    assert set(load_source(FIXTURE).declarations) == {QUERY}


def _rewrite(tmp_path: Path, source: Path, soort: str) -> Path:
    document = json.loads(source.read_text(encoding="utf-8"))
    document["organisatie"]["soort"] = soort
    path = tmp_path / "register.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("source", "soort"),
    [
        (FIXTURE, "buurtteam"),  # dossiers are no client register
        (DATA_DIR / "buurtteam-lekstroom.json", "buurtbemiddeling"),  # and vice versa
    ],
)
def test_register_whose_shape_does_not_match_its_soort_cannot_start(
    keystore: KeyStore, tmp_path: Path, source: Path, soort: str
) -> None:
    with pytest.raises(ValidationError):
        build_app(
            partner_id=BEMIDDELING,
            keys=keystore,
            broker_issuer="http://x",
            data_path=_rewrite(tmp_path, source, soort),
        )


@pytest.mark.parametrize(
    ("status", "einddatum"),
    [("afgebroken", None), ("afgerond met afspraken", None), ("intake", "2026-11-01")],
)
def test_dossier_dates_must_match_its_status(
    tmp_path: Path, status: str, einddatum: str | None
) -> None:
    document = json.loads(FIXTURE.read_text(encoding="utf-8"))
    document["dossiers"][0].update({"status": status, "einddatum": einddatum})
    path = tmp_path / "register.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(ValidationError, match="einddatum"):
        load_source(path)


# --- other questions -----------------------------------------------------------------


@pytest.mark.parametrize(
    "query", ["buurtteam.bekendheid", "ggd.bekendheid", "buurtbemiddeling.bekendheid"]
)
def test_mediation_does_not_answer_another_care_question(
    url: str, keystore: KeyStore, query: str
) -> None:
    body = make_query(query, MARCO).to_body()
    response = post_query(url, body, token=call_token(keystore, partner_id=BEMIDDELING, body=body))
    assert_problem(response, status=404, code="query_not_served")


@pytest.mark.parametrize("partner_id", ["buurtteam-lekstroom", "ggd-lekstroom"])
def test_other_care_parties_do_not_answer_for_mediation(
    adapter_server: Callable[[str, str], RunningServer], keystore: KeyStore, partner_id: str
) -> None:
    body = make_query(QUERY, MARCO).to_body()
    response = post_query(
        adapter_server("zorg", partner_id).url,
        body,
        token=call_token(keystore, partner_id=partner_id, body=body),
    )
    assert_problem(response, status=404, code="query_not_served")
