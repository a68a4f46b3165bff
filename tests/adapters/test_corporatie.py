"""The corporatie adapters over real HTTP: one ERP export per corporation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from adapters.runner import RunningServer
from broker.adapter_protocol import DataCategory
from broker.keys import KeyStore
from tests.adapters.helpers import AHMET, FATIMA, JOOP, MARCO, SANNE, Person, ask, make_query

DE_LINGE = "woonstichting-de-linge"
WOONGOED = "woongoed-lekstroom"
QUERY = "corporatie.huurrelatie"

UrlFor = Callable[[str], str]


@pytest.fixture(scope="module")
def url_for(adapter_server: Callable[[str, str], RunningServer]) -> UrlFor:
    return lambda partner_id: adapter_server("corporatie", partner_id).url


@pytest.mark.parametrize(
    ("field", "category"),
    [
        ("huurder_sinds", DataCategory.tenancy),
        ("contractvorm", DataCategory.tenancy),
        ("overlastmeldingen_aantal", DataCategory.nuisance),
        ("waarschuwingen", DataCategory.enforcement),
        ("gedragsaanwijzing", DataCategory.enforcement),
        ("laatste_kans_contract", DataCategory.enforcement),
        ("ontruimingsprocedure", DataCategory.enforcement),
        # the ERP's financial record and staff notes, never to flow
        ("huurachterstand", DataCategory.financial),
        ("inkomen", DataCategory.financial),
        ("betalingsregeling", DataCategory.financial),
        ("notities", DataCategory.free_text),
    ],
)
def test_known_tenant_is_answered_with_every_field_in_its_category(
    url_for: UrlFor, keystore: KeyStore, field: str, category: DataCategory
) -> None:
    answer = ask(url_for(DE_LINGE), keystore, partner_id=DE_LINGE, query=make_query(QUERY, MARCO))
    assert answer.subject_known is True
    assert answer.fields[field].category is category


def test_tenancy_contents_for_marco(url_for: UrlFor, keystore: KeyStore) -> None:
    answer = ask(url_for(DE_LINGE), keystore, partner_id=DE_LINGE, query=make_query(QUERY, MARCO))
    values = {name: field.value for name, field in answer.fields.items()}
    assert values["huurder_sinds"] == "2015-06-01"
    assert values["contractvorm"] == "huurovereenkomst onbepaalde tijd"
    assert values["overlastmeldingen_aantal"] == 9
    assert values["gedragsaanwijzing"] is False
    assert values["laatste_kans_contract"] is False
    assert values["ontruimingsprocedure"] is False
    assert values["huurachterstand"] == 2345.60
    waarschuwingen = values["waarschuwingen"]
    assert isinstance(waarschuwingen, list)
    assert all(isinstance(w, dict) and set(w) == {"datum", "soort"} for w in waarschuwingen)
    # A note that reveals financial trouble: free text a later scan must catch.
    assert "schuldhulpverlening" in str(values["notities"])


@pytest.mark.parametrize(
    ("partner_id", "person", "known"),
    [
        (DE_LINGE, MARCO, True),
        (DE_LINGE, FATIMA, True),  # the melder rents from De Linge too
        (DE_LINGE, JOOP, True),
        (DE_LINGE, SANNE, False),  # Woongoed's tenant, unknown to De Linge
        (WOONGOED, SANNE, True),
        (WOONGOED, AHMET, True),
        (WOONGOED, MARCO, False),
    ],
)
def test_each_corporation_knows_only_its_own_tenants(
    url_for: UrlFor, keystore: KeyStore, partner_id: str, person: Person, known: bool
) -> None:
    answer = ask(
        url_for(partner_id), keystore, partner_id=partner_id, query=make_query(QUERY, person)
    )
    assert answer.subject_known is known
    if not known:
        assert answer.fields == {}


def test_answer_is_signed_by_the_answering_corporation(url_for: UrlFor, keystore: KeyStore) -> None:
    # ask() verifies against WOONGOED's keys; De Linge's key would not do.
    answer = ask(url_for(WOONGOED), keystore, partner_id=WOONGOED, query=make_query(QUERY, SANNE))
    assert answer.fields["huurder_sinds"].value == "2021-02-01"


def test_period_bounds_reports_warnings_and_notes(url_for: UrlFor, keystore: KeyStore) -> None:
    period = (date(2026, 1, 1), date(2026, 12, 31))
    query = make_query(QUERY, MARCO, period=period)
    fields = ask(url_for(DE_LINGE), keystore, partner_id=DE_LINGE, query=query).fields
    assert fields["overlastmeldingen_aantal"].value == 4
    assert fields["waarschuwingen"].value == [
        {"datum": "2026-06-15", "soort": "gesprek huismeester en wijkconsulent"}
    ]
    notities = fields["notities"].value
    assert isinstance(notities, list)
    assert [n["datum"] for n in notities if isinstance(n, dict)] == ["2026-05-04"]
    # Undated facts about the tenancy stand regardless of the period.
    assert fields["huurder_sinds"].value == "2015-06-01"
