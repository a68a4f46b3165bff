"""The case register's operations (broker/cases/register.py) on SQLite, example convenant."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.cases.model import Case, CaseStatus, Consent, PartnerStatus
from broker.cases.register import CaseRegister, case_document
from broker.cases.requests import CreateCaseRequest
from broker.cases.store import SqlCaseStore
from broker.convenant import Convenant
from broker.errors import InvalidRequestError, NotFoundError, RefusalError
from broker.sql import SqlConnection
from tests.cases import CARE, OTHER_CORPORATION, OWNER, POLICE, REGISSEUR, T0

GGD = "ggd-lekstroom"
LATER = T0 + timedelta(hours=1)


def body(**changes: Any) -> dict[str, Any]:
    """A realistic POST /v1/cases body: a corporation dwelling, police and care in the case."""
    document: dict[str, Any] = {
        "reference": "LEK-2026-0042",
        "kind": "complex",
        "address": {"postcode": "4101 QZ", "huisnummer": 217, "plaats": "Vreeswijkerdam"},
        "dwelling_owner": OWNER,
        "subjects": [
            {
                "ref": "og-1",
                "role": "overlastgever",
                "name": "Willemijn Oosterhuis-Brandsma",
                "birth_date": "1979-03-14",
            },
            {
                "ref": "m-1",
                "role": "melder",
                "name": "Reinout van der Kolk",
                "birth_date": "1985-07-02",
            },
        ],
        "partners": [POLICE, CARE],
        "criteria": [1, 2, 6],
    }
    document.update(changes)
    return document


def request(**changes: Any) -> CreateCaseRequest:
    return CreateCaseRequest.model_validate(body(**changes))


@pytest.fixture
def register(sqlite_path: Path, convenant: Convenant) -> Iterator[CaseRegister]:
    store = SqlCaseStore(SqlConnection(dialect="sqlite", sqlite_path=sqlite_path), kek=b"k" * 32)
    yield CaseRegister(store=store, convenant=convenant)
    store.close()


@pytest.fixture
def case(register: CaseRegister) -> Case:
    return register.create(caller=REGISSEUR, request=request(), now=T0)


def _status(case: Case, partner: str) -> PartnerStatus | None:
    entry = case.partner_entry(partner)
    return entry.status if entry else None


# ---- create --------------------------------------------------------------------


def test_regisseur_creates_a_case_that_is_stored(register: CaseRegister, case: Case) -> None:
    assert case.id.startswith("case_")
    assert len(case.id) == len("case_") + 32
    assert case.status == CaseStatus.aangemeld
    assert case.regisseur == REGISSEUR
    assert case.status_history == ((CaseStatus.aangemeld.value, T0),)
    assert case.address is not None
    assert case.address.postcode == "4101QZ"  # stored without the space
    assert register.load(case.id) == case


def test_case_ids_cannot_be_guessed_from_each_other(register: CaseRegister) -> None:
    ids = {register.create(caller=REGISSEUR, request=request(), now=T0).id for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize(
    "caller",
    [
        # a partner without regisseur: true
        POLICE,
        # the corporation, which may write consent but not cases
        OWNER,
        # a care partner
        CARE,
        # the DPO, a principal but not a partner
        "fg-lekstroom",
        # somebody the convenant does not know
        "gemeente-elders",
    ],
)
def test_only_a_regisseur_partner_creates_cases(register: CaseRegister, caller: str) -> None:
    with pytest.raises(RefusalError) as caught:
        register.create(caller=caller, request=request(), now=T0)
    assert caught.value.code == "not_regisseur"
    assert caught.value.status == 403


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # a partner the convenant does not know
        ({"partners": [POLICE, "politie-elders"]}, "politie-elders"),
        # a dwelling owner the convenant does not know
        ({"dwelling_owner": "woonbedrijf-elders"}, "woonbedrijf-elders"),
        # a dwelling owner that is a partner but not a corporation
        ({"dwelling_owner": POLICE}, "corporation"),
        # admission criteria the convenant does not have
        ({"criteria": [1, 7, 99]}, r"\[7, 99\]"),
        # nobody causes the nuisance
        (
            {
                "subjects": [
                    {"ref": "m-1", "role": "melder", "name": "A B", "birth_date": "1990-01-01"},
                    {"ref": "o-1", "role": "omwonende", "name": "C D", "birth_date": "1991-01-01"},
                ]
            },
            "overlastgever",
        ),
        # two subjects with one ref: exchanges would be ambiguous
        (
            {
                "subjects": [
                    {
                        "ref": "og-1",
                        "role": "overlastgever",
                        "name": "A B",
                        "birth_date": "1990-01-01",
                    },
                    {"ref": "og-1", "role": "melder", "name": "C D", "birth_date": "1991-01-01"},
                ]
            },
            "unique",
        ),
    ],
)
def test_invalid_case_is_refused_and_nothing_is_stored(
    register: CaseRegister, sqlite_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        register.create(caller=REGISSEUR, request=request(**changes), now=T0)
    raw = sqlite3.connect(sqlite_path)
    try:
        assert raw.execute("SELECT COUNT(*) FROM cases").fetchone() == (0,)
    finally:
        raw.close()


def test_corporation_owner_is_invited_and_asked_for_consent(case: Case) -> None:
    assert case.consent == Consent.pending
    assert _status(case, OWNER) == PartnerStatus.uitgenodigd
    assert _status(case, REGISSEUR) == PartnerStatus.actief
    assert _status(case, POLICE) == PartnerStatus.actief
    assert _status(case, CARE) == PartnerStatus.actief


def test_owner_listed_among_partners_still_waits_for_its_consent(register: CaseRegister) -> None:
    case = register.create(caller=REGISSEUR, request=request(partners=[POLICE, OWNER]), now=T0)
    assert case.consent == Consent.pending
    assert _status(case, OWNER) == PartnerStatus.uitgenodigd


def test_private_dwelling_needs_no_consent(register: CaseRegister) -> None:
    case = register.create(caller=REGISSEUR, request=request(dwelling_owner="particulier"), now=T0)
    assert case.consent == Consent.not_required
    assert case.partner_entry("particulier") is None
    assert {p.status for p in case.partners} == {PartnerStatus.actief}


# ---- reading --------------------------------------------------------------------


@pytest.mark.parametrize(
    "caller",
    [
        # a partner of the convenant that is not in this case
        OTHER_CORPORATION,
        # a stranger
        "gemeente-elders",
    ],
)
def test_non_partners_cannot_tell_the_case_exists(
    register: CaseRegister, case: Case, caller: str
) -> None:
    with pytest.raises(NotFoundError) as real:
        register.get(caller=caller, case_id=case.id)
    with pytest.raises(NotFoundError) as absent:
        register.get(caller=caller, case_id="case_" + "0" * 32)
    assert str(real.value) == str(absent.value)


def test_status_view_hides_the_care_partner_from_other_partners(
    register: CaseRegister, case: Case
) -> None:
    view = register.status_view(caller=POLICE, case_id=case.id, now=LATER)
    care = [p for p in view["partners"] if p["role"] == "zorg"]
    assert care == [{"partner": "zorgpartner", "role": "zorg", "status": "actief"}]
    assert CARE not in repr(view)
    # The other partners are shown in full.
    assert {"partner": POLICE, "role": "politie", "status": "actief", "since": T0.isoformat()} in (
        view["partners"]
    )


@pytest.mark.parametrize(
    "viewer",
    [
        # the regisseur directs the care partner and knows it
        REGISSEUR,
        # the care partner sees itself
        CARE,
    ],
)
def test_status_view_names_the_care_partner_to_regisseur_and_itself(
    register: CaseRegister, case: Case, viewer: str
) -> None:
    view = register.status_view(caller=viewer, case_id=case.id, now=LATER)
    assert {"partner": CARE, "role": "zorg", "status": "actief", "since": T0.isoformat()} in (
        view["partners"]
    )
    assert (view["case"], view["status"], view["regisseur"]) == (case.id, "aangemeld", REGISSEUR)


def test_case_document_hides_the_care_partner_and_carries_no_names(
    register: CaseRegister, case: Case, convenant: Convenant
) -> None:
    document = case_document(case, convenant, viewer=POLICE, now=LATER)
    text = repr(document)
    assert CARE not in text
    assert "Oosterhuis" not in text
    assert "1979-03-14" not in text
    assert document["subjects"] == [
        {"ref": "og-1", "role": "overlastgever"},
        {"ref": "m-1", "role": "melder"},
    ]


def test_status_view_of_a_foreign_case_is_not_found(register: CaseRegister, case: Case) -> None:
    with pytest.raises(NotFoundError):
        register.status_view(caller=GGD, case_id=case.id, now=LATER)


# ---- deadlines ----------------------------------------------------------------------


def _deadlines(register: CaseRegister, case_id: str) -> dict[str, tuple[str, bool]]:
    view = register.status_view(caller=REGISSEUR, case_id=case_id, now=LATER)
    return {d["kind"]: (d["due"], d["met"]) for d in view["deadlines"]}


def test_new_corporation_case_has_open_consent_and_intake_deadlines(
    register: CaseRegister, case: Case
) -> None:
    assert _deadlines(register, case.id) == {
        # corporation_consent_days: 3 in the example convenant
        "corporation_consent": ((T0 + timedelta(days=3)).isoformat(), False),
        # intake_decision_days: 5
        "intake_decision": ((T0 + timedelta(days=5)).isoformat(), False),
    }


def test_private_dwelling_has_no_consent_deadline(register: CaseRegister) -> None:
    case = register.create(caller=REGISSEUR, request=request(dwelling_owner="particulier"), now=T0)
    assert set(_deadlines(register, case.id)) == {"intake_decision"}


@pytest.mark.parametrize(
    "granted",
    [
        # granted consent meets the term
        True,
        # so does a refusal: the corporation answered
        False,
    ],
)
def test_consent_decision_meets_the_consent_deadline(
    register: CaseRegister, case: Case, granted: bool
) -> None:
    register.decide_consent(caller=OWNER, case_id=case.id, granted=granted, now=LATER)
    assert _deadlines(register, case.id)["corporation_consent"][1] is True
    assert _deadlines(register, case.id)["intake_decision"][1] is False


@pytest.mark.parametrize(
    "target",
    [
        # intake taken up
        CaseStatus.in_behandeling,
        # intake decided the nuisance is not complex
        CaseStatus.geen_complexe_overlast,
    ],
)
def test_moving_out_of_aangemeld_meets_the_intake_deadline(
    register: CaseRegister, case: Case, target: CaseStatus
) -> None:
    register.transition(caller=REGISSEUR, case_id=case.id, to=target, now=LATER)
    assert _deadlines(register, case.id)["intake_decision"][1] is True


# ---- directing the case ----------------------------------------------------------


@pytest.mark.parametrize(
    "caller",
    [
        # an active partner of the case
        POLICE,
        # the care partner of the case
        CARE,
    ],
)
def test_only_the_regisseur_moves_or_admits(
    register: CaseRegister, case: Case, caller: str
) -> None:
    with pytest.raises(RefusalError) as moved:
        register.transition(caller=caller, case_id=case.id, to=CaseStatus.in_behandeling, now=LATER)
    with pytest.raises(RefusalError) as admitted:
        register.admit(caller=caller, case_id=case.id, partner=GGD, now=LATER)
    assert moved.value.code == admitted.value.code == "not_regisseur"
    stored = register.load(case.id)
    assert stored is not None
    assert (stored.status, stored.version, stored.partner_entry(GGD)) == (
        CaseStatus.aangemeld,
        1,
        None,
    )


def test_strangers_get_not_found_for_transitions(register: CaseRegister, case: Case) -> None:
    with pytest.raises(NotFoundError):
        register.transition(
            caller=OTHER_CORPORATION, case_id=case.id, to=CaseStatus.in_behandeling, now=LATER
        )


def test_regisseur_moves_the_case_and_each_move_is_stored(
    register: CaseRegister, case: Case
) -> None:
    moved = register.transition(
        caller=REGISSEUR, case_id=case.id, to=CaseStatus.in_behandeling, now=LATER
    )
    assert moved.version == 2
    assert register.load(case.id) == moved


def test_regisseur_admits_a_known_partner_only(register: CaseRegister, case: Case) -> None:
    with pytest.raises(InvalidRequestError, match="ggd-elders"):
        register.admit(caller=REGISSEUR, case_id=case.id, partner="ggd-elders", now=LATER)
    admitted = register.admit(caller=REGISSEUR, case_id=case.id, partner=GGD, now=LATER)
    assert _status(admitted, GGD) == PartnerStatus.actief
    assert register.load(case.id) == admitted


# ---- consent ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "caller",
    [
        # the regisseur cannot consent for the corporation
        REGISSEUR,
        # an active partner neither
        POLICE,
        # another corporation of the convenant, not in the case
        OTHER_CORPORATION,
    ],
)
def test_consent_by_anyone_but_the_owner_is_not_found(
    register: CaseRegister, case: Case, caller: str
) -> None:
    with pytest.raises(NotFoundError):
        register.decide_consent(caller=caller, case_id=case.id, granted=True, now=LATER)
    stored = register.load(case.id)
    assert stored is not None
    assert stored.consent == Consent.pending


def test_owner_grants_consent_and_takes_part(register: CaseRegister, case: Case) -> None:
    decided = register.decide_consent(caller=OWNER, case_id=case.id, granted=True, now=LATER)
    assert decided.consent == Consent.granted
    assert _status(decided, OWNER) == PartnerStatus.actief
    assert register.load(case.id) == decided


def test_consent_for_an_unknown_case_is_not_found(register: CaseRegister) -> None:
    with pytest.raises(NotFoundError):
        register.decide_consent(caller=OWNER, case_id="case_" + "0" * 32, granted=True, now=LATER)
