"""The case register over real HTTP: who may create, read, admit, consent and move cases."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from adapters.sdk.client import BrokerClient
from broker.stack import LocalStack
from tests.e2e.conftest import (
    BUURTTEAM,
    DE_LINGE,
    FG,
    GEMEENTE,
    GGD,
    POLITIE,
    WOONGOED,
    audit_entries,
    case_body,
)

pytestmark = pytest.mark.e2e

Clients = Callable[[str], BrokerClient]


def _create(client_for: Clients, **overrides: object) -> str:
    response = client_for(GEMEENTE).post("/v1/cases", json=case_body(**overrides))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "aangemeld"
    case_id: str = response.json()["id"]
    return case_id


def test_only_the_regisseur_creates_cases(client_for: Clients) -> None:
    response = client_for(DE_LINGE).post("/v1/cases", json=case_body())
    assert response.status_code == 403
    assert response.json()["code"] == "not_regisseur"


def test_care_partner_cannot_even_ask_for_the_write_scope(client_for: Clients) -> None:
    # The zorg role has no cases:write scope in the convenant.
    response = client_for(BUURTTEAM).post("/v1/cases", json=case_body())
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


def test_case_is_visible_to_its_partners_only(client_for: Clients) -> None:
    case_id = _create(client_for)
    seen = client_for(POLITIE).get(f"/v1/cases/{case_id}")
    assert seen.status_code == 200
    document = seen.json()
    assert document["id"] == case_id
    # Names and birth dates never leave the register (R10: not a central dossier).
    assert "Marco" not in seen.text and "1979-03-14" not in seen.text
    assert {s["ref"] for s in document["subjects"]} == {"og-1", "m-1"}
    stranger = client_for(WOONGOED).get(f"/v1/cases/{case_id}")
    absent = client_for(WOONGOED).get("/v1/cases/case_" + "f" * 32)
    assert stranger.status_code == absent.status_code == 404
    assert stranger.json() == absent.json()


def test_dwelling_owner_is_invited_until_it_consents(client_for: Clients) -> None:
    case_id = _create(client_for)
    before = client_for(GEMEENTE).get(f"/v1/cases/{case_id}/status").json()
    owner = [p for p in before["partners"] if p["partner"] == DE_LINGE]
    assert owner and owner[0]["status"] == "uitgenodigd"
    consent = [d for d in before["deadlines"] if d["kind"] == "corporation_consent"]
    assert consent and consent[0]["met"] is False
    granted = client_for(DE_LINGE).post(
        f"/v1/cases/{case_id}/consent", json={"decision": "granted"}
    )
    assert granted.status_code == 200
    after = client_for(DE_LINGE).get(f"/v1/cases/{case_id}/status").json()
    assert [p["status"] for p in after["partners"] if p["partner"] == DE_LINGE] == ["actief"]
    assert [d["met"] for d in after["deadlines"] if d["kind"] == "corporation_consent"] == [True]
    twice = client_for(DE_LINGE).post(f"/v1/cases/{case_id}/consent", json={"decision": "refused"})
    assert twice.status_code == 409


def test_only_the_owner_decides_consent(client_for: Clients) -> None:
    case_id = _create(client_for)
    response = client_for(GEMEENTE).post(
        f"/v1/cases/{case_id}/consent", json={"decision": "granted"}
    )
    assert response.status_code == 404


def test_corporation_status_view_hides_which_care_partner_takes_part(client_for: Clients) -> None:
    case_id = _create(client_for)
    client_for(DE_LINGE).post(f"/v1/cases/{case_id}/consent", json={"decision": "granted"})
    status = client_for(DE_LINGE).get(f"/v1/cases/{case_id}/status")
    assert status.status_code == 200
    body = status.json()
    assert body["case"] == case_id and body["regisseur"] == GEMEENTE
    assert GGD not in status.text and BUURTTEAM not in status.text
    care = [p for p in body["partners"] if p["role"] == "zorg"]
    assert len(care) == 2 and all(set(p) == {"partner", "role", "status"} for p in care)
    # The regisseur sees who they are.
    full = client_for(GEMEENTE).get(f"/v1/cases/{case_id}/status").json()
    assert {GGD, BUURTTEAM} <= {p["partner"] for p in full["partners"]}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # the full happy path of contract.md, in order
        (["in_behandeling", "casusoverleg", "plan_van_aanpak", "monitoring", "afgesloten"], 200),
        # skipping the case meeting is not allowed
        (["in_behandeling", "plan_van_aanpak"], 409),
        # a closed case stays closed
        (["in_behandeling", "geen_complexe_overlast", "in_behandeling"], 409),
        # a case cannot go back to aangemeld
        (["aangemeld"], 409),
    ],
)
def test_transitions_follow_the_process(
    client_for: Clients, path: list[str], expected: int
) -> None:
    case_id = _create(client_for)
    last = None
    for target in path:
        last = client_for(GEMEENTE).post(f"/v1/cases/{case_id}/transitions", json={"to": target})
        if last.status_code != 200:
            break
    assert last is not None and last.status_code == expected, last.text
    if expected == 409:
        assert last.json()["code"] == "conflict"


def test_only_the_cases_regisseur_moves_it(client_for: Clients) -> None:
    case_id = _create(client_for)
    response = client_for(DE_LINGE).post(
        f"/v1/cases/{case_id}/transitions", json={"to": "in_behandeling"}
    )
    assert response.status_code in (403, 404)


def test_admitted_partner_sees_the_case(client_for: Clients) -> None:
    case_id = _create(client_for, partners=[POLITIE])
    assert client_for(BUURTTEAM).get(f"/v1/cases/{case_id}").status_code == 404
    admitted = client_for(GEMEENTE).post(
        f"/v1/cases/{case_id}/partners", json={"partner": BUURTTEAM}
    )
    assert admitted.status_code == 200, admitted.text
    assert client_for(BUURTTEAM).get(f"/v1/cases/{case_id}").status_code == 200
    again = client_for(GEMEENTE).post(f"/v1/cases/{case_id}/partners", json={"partner": BUURTTEAM})
    assert again.status_code == 409


@pytest.mark.parametrize(
    "body_change",
    [
        # an unknown field (mass assignment of the status)
        {"status": "afgesloten"},
        # a partner that is not in the convenant
        {"partners": ["politie-elders"]},
        # no overlastgever among the subjects
        {"subjects": [{"ref": "m-1", "role": "melder", "name": "A B", "birth_date": "1990-01-01"}]},
        # a postcode that is not Dutch
        {"address": {"postcode": "ABCDE", "huisnummer": 1, "plaats": "X"}},
    ],
)
def test_bad_case_input_is_refused_and_logged(
    client_for: Clients, body_change: dict[str, object]
) -> None:
    size = client_for(FG).get("/v1/audit/checkpoint").json()["size"]
    response = client_for(GEMEENTE).post("/v1/cases", json=case_body(**body_change))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_request"
    assert "Marco" not in response.text
    logged = audit_entries(client_for(FG), cursor=str(size - 1))
    refusals = [e for e in logged if e.get("requester", {}).get("partner") == GEMEENTE]
    assert [e["reasons"][0]["code"] for e in refusals] == ["invalid_request"]


def test_convenant_is_served_to_partners(client_for: Clients) -> None:
    response = client_for(POLITIE).get("/v1/convenant")
    assert response.status_code == 200
    convenant = response.json()
    assert convenant["id"] == "convenant-woonoverlast-lekstroom"
    assert {p["role"] for p in convenant["partners"]} == {
        "gemeente",
        "politie",
        "corporatie",
        "zorg",
    }
    police = next(e for e in convenant["exchanges"] if e["id"] == "politie.meldingen")
    assert police["legal_basis"]["law"] == "Wet politiegegevens"
    assert set(police) >= {"provider_role", "requester_roles", "fields", "legal_basis"}


def test_convenant_needs_a_token(stack: LocalStack) -> None:
    response = httpx.get(stack.broker_url + "/v1/convenant")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
