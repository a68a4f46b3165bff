"""The adapter registry against the example convenant: every partner has a working adapter.

These tests tie the adapters to the convenant: each partner finds its kind and
fixture, serves exactly the exchange types the convenant gives its role and
function, declares every field the convenant asks of it, and answers every
fixture person only in declared, known categories.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from adapters.registry import ADAPTERS, adapter_for_partner
from adapters.runner import RunningServer
from broker.adapter_protocol import SPECIAL_CATEGORIES, DataCategory
from broker.convenant import Convenant, Partner
from broker.keys import KeyStore
from tests.adapters.helpers import AHMET, FATIMA, JOOP, MARCO, SANNE, ask, make_query

PARTNER_KINDS = [
    ("gemeente-lekstroom", "gemeente"),
    ("politie-lekstroom", "politie"),
    ("woonstichting-de-linge", "corporatie"),
    ("woongoed-lekstroom", "corporatie"),
    ("buurtteam-lekstroom", "zorg"),
    ("ggd-lekstroom", "zorg"),
    ("buurtbemiddeling-lekstroom", "zorg"),
]


def _served_by_convenant(convenant: Convenant, partner: Partner) -> set[str]:
    return {
        e.id
        for e in convenant.exchanges
        if e.provider_role is partner.role
        and (e.provider_function is None or e.provider_function == partner.function)
    }


def _declaration(url: str) -> dict[str, list[dict[str, object]]]:
    response = httpx.get(url + "/v1/declaration", timeout=10)
    assert response.status_code == 200
    exchanges: dict[str, list[dict[str, object]]] = response.json()["exchanges"]
    return exchanges


def test_registry_has_one_kind_per_partner_role() -> None:
    assert set(ADAPTERS) == {"politie", "gemeente", "corporatie", "zorg"}
    assert {kind.role.value for kind in ADAPTERS.values()} == set(ADAPTERS)


def test_table_covers_every_partner_of_the_convenant(convenant: Convenant) -> None:
    assert {p.id for p in convenant.partners} == {partner_id for partner_id, _ in PARTNER_KINDS}


@pytest.mark.parametrize(("partner_id", "kind"), PARTNER_KINDS)
def test_every_convenant_partner_finds_its_kind_and_fixture(
    convenant: Convenant, partner_id: str, kind: str
) -> None:
    adapter = adapter_for_partner(convenant, partner_id)
    assert adapter.name == kind
    assert adapter.fixture_path(partner_id).is_file()


@pytest.mark.parametrize(("partner_id", "kind"), PARTNER_KINDS)
def test_each_adapter_serves_exactly_what_the_convenant_assigns_it(
    convenant: Convenant,
    adapter_server: Callable[[str, str], RunningServer],
    partner_id: str,
    kind: str,
) -> None:
    partner = convenant.partner(partner_id)
    assert partner is not None
    declared = _declaration(adapter_server(kind, partner_id).url)
    assert set(declared) == _served_by_convenant(convenant, partner)
    assert declared  # every partner in the example convenant provides something


@pytest.mark.parametrize(("partner_id", "kind"), PARTNER_KINDS)
def test_every_convenant_field_is_declared_in_an_ordinary_category(
    convenant: Convenant,
    adapter_server: Callable[[str, str], RunningServer],
    partner_id: str,
    kind: str,
) -> None:
    # A convenant field an adapter cannot answer, or answers as special data,
    # would make the exchange useless or the convenant unlawful.
    declared = _declaration(adapter_server(kind, partner_id).url)
    for exchange_id, fields in declared.items():
        exchange = convenant.exchange(exchange_id)
        assert exchange is not None
        categories = {str(f["name"]): DataCategory(str(f["category"])) for f in fields}
        for name in exchange.fields:
            assert name in categories, f"{partner_id} does not declare {name!r}"
            assert categories[name] not in SPECIAL_CATEGORIES


@pytest.mark.parametrize(("partner_id", "kind"), PARTNER_KINDS)
def test_every_fixture_answer_uses_declared_data_categories(
    adapter_server: Callable[[str, str], RunningServer],
    keystore: KeyStore,
    partner_id: str,
    kind: str,
) -> None:
    url = adapter_server(kind, partner_id).url
    declared = _declaration(url)
    for exchange_id, fields in declared.items():
        categories = {str(f["name"]): str(f["category"]) for f in fields}
        for person in (MARCO, FATIMA, JOOP, SANNE, AHMET):
            query = make_query(exchange_id, person)
            answer = ask(url, keystore, partner_id=partner_id, query=query)
            for name, field in answer.fields.items():
                assert isinstance(field.category, DataCategory)
                assert categories[name] == field.category.value


def test_partner_outside_the_convenant_has_no_adapter(convenant: Convenant) -> None:
    with pytest.raises(LookupError):
        adapter_for_partner(convenant, "woningbouw-elders")


@pytest.mark.parametrize("partner_id", ["../politie/data/politie-lekstroom", "politie/../x", ""])
def test_fixture_lookup_cannot_leave_the_data_folder(partner_id: str) -> None:
    with pytest.raises(ValueError, match="partner id"):
        ADAPTERS["politie"].fixture_path(partner_id)


def test_partner_without_a_fixture_cannot_start(keystore: KeyStore) -> None:
    # A corporation the fixtures do not know must not borrow another's data.
    with pytest.raises(FileNotFoundError):
        ADAPTERS["corporatie"].build_app(
            partner_id="politie-lekstroom", keys=keystore, broker_issuer="http://x"
        )


def test_explicit_data_path_overrides_the_fixture(keystore: KeyStore, tmp_path: Path) -> None:
    source = ADAPTERS["politie"].fixture_path("politie-lekstroom")
    copy = tmp_path / "register.json"
    copy.write_bytes(source.read_bytes())
    app = ADAPTERS["politie"].build_app(
        partner_id="politie-lekstroom", keys=keystore, broker_issuer="http://x", data_path=copy
    )
    assert app.title.endswith("politie-lekstroom")
