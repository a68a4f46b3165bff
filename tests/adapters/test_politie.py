"""The police adapter over real HTTP: what it answers, about whom, for which period."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from adapters.runner import RunningServer
from broker.adapter_protocol import DataCategory
from broker.keys import KeyStore
from tests.adapters.helpers import FATIMA, JOOP, MARCO, SANNE, STRANGER, Person, ask, make_query

PARTNER = "politie-lekstroom"
QUERY = "politie.meldingen"


@pytest.fixture(scope="module")
def url(adapter_server: Callable[[str, str], RunningServer]) -> str:
    return adapter_server("politie", PARTNER).url


@pytest.mark.parametrize(
    ("field", "category"),
    [
        ("meldingen_aantal", DataCategory.nuisance),
        ("meldingen", DataCategory.nuisance),
        ("politie_inzet", DataCategory.police_deployment),
        ("fysiek_geweld_omwonenden", DataCategory.nuisance),
        ("zware_intimidatie_bedreiging", DataCategory.nuisance),
        ("bekend_overlast_antecedenten", DataCategory.nuisance_history),
        ("lopend_onderzoek", DataCategory.investigation),
        # held by the register, never to flow: the adapter answers them anyway
        ("strafrechtelijke_antecedenten", DataCategory.criminal),
        ("verdachten_derden", DataCategory.criminal),
        ("onderzoeksgegevens", DataCategory.investigation),
        ("interne_notitie", DataCategory.free_text),
    ],
)
def test_known_overlastgever_is_answered_with_every_field_in_its_category(
    url: str, keystore: KeyStore, field: str, category: DataCategory
) -> None:
    answer = ask(url, keystore, partner_id=PARTNER, query=make_query(QUERY, MARCO))
    assert answer.subject_known is True
    assert answer.fields[field].category is category


def test_register_contents_for_marco(url: str, keystore: KeyStore) -> None:
    fields = ask(url, keystore, partner_id=PARTNER, query=make_query(QUERY, MARCO)).fields
    meldingen = fields["meldingen"].value
    assert isinstance(meldingen, list)
    assert fields["meldingen_aantal"].value == len(meldingen) == 7
    assert all(
        isinstance(m, dict) and set(m) == {"datum", "aard", "korte_omschrijving"} for m in meldingen
    )
    descriptions = " ".join(str(m["korte_omschrijving"]) for m in meldingen if isinstance(m, dict))
    # Free text that a later scan must catch: drug use and psychiatric issues.
    assert "drugs" in descriptions
    assert "psychiatrische" in descriptions
    assert fields["fysiek_geweld_omwonenden"].value is True
    assert fields["zware_intimidatie_bedreiging"].value is True
    assert fields["bekend_overlast_antecedenten"].value is True
    assert fields["lopend_onderzoek"].value is False
    assert "om_toestemming" not in fields  # no investigation, no permission to speak of
    assert "hechtenis" in str(fields["interne_notitie"].value)
    assert "Dennis Roelofs" in str(fields["verdachten_derden"].value)
    inzet = fields["politie_inzet"].value
    assert isinstance(inzet, dict)
    inzet_days = inzet["data"]
    assert isinstance(inzet_days, list)
    assert inzet["aantal"] == len(inzet_days) == 6


def test_running_investigation_is_reported_with_its_om_permission(
    url: str, keystore: KeyStore
) -> None:
    fields = ask(url, keystore, partner_id=PARTNER, query=make_query(QUERY, SANNE)).fields
    assert fields["meldingen_aantal"].value == 3
    assert fields["lopend_onderzoek"].value is True
    assert fields["om_toestemming"].value is False
    assert fields["om_toestemming"].category is DataCategory.investigation
    assert "OM-zaak" in str(fields["onderzoeksgegevens"].value)
    assert fields["bekend_overlast_antecedenten"].value is True


@pytest.mark.parametrize("person", [JOOP, FATIMA, STRANGER])
def test_person_not_in_the_register_is_unknown_with_no_fields(
    url: str, keystore: KeyStore, person: Person
) -> None:
    answer = ask(url, keystore, partner_id=PARTNER, query=make_query(QUERY, person))
    assert answer.subject_known is False
    assert answer.fields == {}


@pytest.mark.parametrize(
    ("name", "birth_date", "known"),
    [
        ("marco  DE wit", date(1979, 3, 14), True),  # case and spacing do not matter
        (" Marco de Wit ", date(1979, 3, 14), True),
        ("Marco de Wit", date(1979, 3, 15), False),  # same name, other person
        ("M. de Wit", date(1979, 3, 14), False),  # initials are too loose to match
    ],
)
def test_subject_is_matched_on_normalised_name_and_birth_date(
    url: str, keystore: KeyStore, name: str, birth_date: date, known: bool
) -> None:
    person = (name, birth_date, "overlastgever", MARCO[3])
    answer = ask(url, keystore, partner_id=PARTNER, query=make_query(QUERY, person))
    assert answer.subject_known is known


def test_period_bounds_meldingen_and_deployments(url: str, keystore: KeyStore) -> None:
    period = (date(2025, 1, 1), date(2025, 12, 31))
    query = make_query(QUERY, MARCO, period=period)
    fields = ask(url, keystore, partner_id=PARTNER, query=query).fields
    meldingen = fields["meldingen"].value
    assert isinstance(meldingen, list)
    days = [date.fromisoformat(str(m["datum"])) for m in meldingen if isinstance(m, dict)]
    assert len(days) == fields["meldingen_aantal"].value == 4
    assert all(period[0] <= d <= period[1] for d in days)
    inzet = fields["politie_inzet"].value
    assert isinstance(inzet, dict)
    inzet_days = inzet["data"]
    assert isinstance(inzet_days, list)
    assert inzet["aantal"] == len(inzet_days) == 3
    assert all(period[0] <= date.fromisoformat(str(d)) <= period[1] for d in inzet_days)


def test_period_is_inclusive_of_both_ends(url: str, keystore: KeyStore) -> None:
    one_day = (date(2025, 2, 8), date(2025, 2, 8))
    query = make_query(QUERY, MARCO, period=one_day)
    assert ask(url, keystore, partner_id=PARTNER, query=query).fields["meldingen_aantal"].value == 1
