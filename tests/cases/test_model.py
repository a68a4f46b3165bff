"""The pure rules of the case register: transitions, admission, consent, visibility."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from itertools import product

import pytest

from broker.cases.model import (
    ALLOWED_TRANSITIONS,
    CasePartner,
    CaseStatus,
    Consent,
    PartnerStatus,
    decide_admission,
    decide_consent,
    decide_transition,
    require_regisseur,
    require_visible,
)
from broker.errors import ConflictError, NotFoundError
from tests.cases import CARE, OWNER, POLICE, REGISSEUR, T0, make_case

LATER = T0 + timedelta(days=2)
S = CaseStatus

# The process of contract.md and seed 002, written out by hand so that a
# change to ALLOWED_TRANSITIONS has to change this table too.
DOCUMENTED_TRANSITIONS = [
    # intake starts
    (S.aangemeld, S.in_behandeling),
    # intake finds no complex nuisance straight away (5-working-day destruction)
    (S.aangemeld, S.geen_complexe_overlast),
    # intake done: the case goes to the case meeting
    (S.in_behandeling, S.casusoverleg),
    # during intake the criteria turn out not to hold
    (S.in_behandeling, S.geen_complexe_overlast),
    # the case meeting agrees a plan
    (S.casusoverleg, S.plan_van_aanpak),
    # the case meeting finds no complex nuisance
    (S.casusoverleg, S.geen_complexe_overlast),
    # the plan runs and is monitored
    (S.plan_van_aanpak, S.monitoring),
    # monitoring ends the case
    (S.monitoring, S.afgesloten),
    # monitoring adjusts the plan (seed 004 §5.1 "bijstellingen")
    (S.monitoring, S.plan_van_aanpak),
]

ALL_PAIRS = list(product(CaseStatus, CaseStatus))
FORBIDDEN_TRANSITIONS = [
    (source, target) for source, target in ALL_PAIRS if target not in ALLOWED_TRANSITIONS[source]
]
FINAL_STATES = {S.afgesloten, S.geen_complexe_overlast}


def _pair_ids(pairs: list[tuple[CaseStatus, CaseStatus]]) -> list[str]:
    return [f"{source.value}->{target.value}" for source, target in pairs]


def test_allowed_transitions_are_exactly_the_documented_process() -> None:
    allowed = {(s, t) for s, targets in ALLOWED_TRANSITIONS.items() for t in targets}
    assert allowed == set(DOCUMENTED_TRANSITIONS)
    assert set(ALLOWED_TRANSITIONS) == set(CaseStatus)
    # 7 states, 49 ordered pairs, 9 of them allowed: the other 40 are 409s.
    assert len(FORBIDDEN_TRANSITIONS) == len(ALL_PAIRS) - len(DOCUMENTED_TRANSITIONS) == 40


@pytest.mark.parametrize(
    ("source", "target"), DOCUMENTED_TRANSITIONS, ids=_pair_ids(DOCUMENTED_TRANSITIONS)
)
def test_documented_transition_moves_the_case_and_records_it(
    source: CaseStatus, target: CaseStatus
) -> None:
    case = make_case(status=source)
    moved = decide_transition(case, target, now=LATER)
    assert moved.status == target
    assert moved.updated_at == LATER
    assert moved.status_history == (*case.status_history, (target.value, LATER))
    # Everything else about the case stays as it was.
    assert replace(moved, status=source, updated_at=T0, status_history=case.status_history) == case


@pytest.mark.parametrize(
    ("source", "target"), FORBIDDEN_TRANSITIONS, ids=_pair_ids(FORBIDDEN_TRANSITIONS)
)
def test_every_other_transition_is_a_conflict(source: CaseStatus, target: CaseStatus) -> None:
    case = make_case(status=source)
    with pytest.raises(ConflictError) as caught:
        decide_transition(case, target, now=LATER)
    assert repr(source.value) in str(caught.value)
    assert repr(target.value) in str(caught.value)


@pytest.mark.parametrize("status", list(CaseStatus), ids=str)
def test_only_closed_and_not_complex_are_final(status: CaseStatus) -> None:
    assert (ALLOWED_TRANSITIONS[status] == frozenset()) == (status in FINAL_STATES)


@pytest.mark.parametrize("status", sorted(FINAL_STATES), ids=str)
def test_a_final_case_cannot_be_reopened(status: CaseStatus) -> None:
    case = make_case(status=status)
    for target in CaseStatus:
        with pytest.raises(ConflictError, match="final state"):
            decide_transition(case, target, now=LATER)


def _reachable(start: CaseStatus) -> set[CaseStatus]:
    seen = {start}
    frontier = [start]
    while frontier:
        for target in ALLOWED_TRANSITIONS[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return seen


def test_every_state_is_reachable_from_intake() -> None:
    assert _reachable(S.aangemeld) == set(CaseStatus)


@pytest.mark.parametrize("status", list(CaseStatus), ids=str)
def test_every_state_can_still_reach_an_end(status: CaseStatus) -> None:
    assert _reachable(status) & FINAL_STATES


# ---- admission ---------------------------------------------------------------


def test_dwelling_owner_is_only_invited_while_its_consent_is_pending() -> None:
    case = make_case(partners=(CasePartner(REGISSEUR, PartnerStatus.actief, T0),))
    admitted = decide_admission(case, OWNER, now=LATER)
    entry = admitted.partner_entry(OWNER)
    assert entry == CasePartner(OWNER, PartnerStatus.uitgenodigd, LATER)
    assert admitted.updated_at == LATER


@pytest.mark.parametrize(
    ("partner", "consent"),
    [
        # a police team never waits for consent
        (POLICE, Consent.pending),
        # a care partner neither
        (CARE, Consent.pending),
        # the owner takes part at once when the dwelling needs no consent
        (OWNER, Consent.not_required),
        # or once it has granted it
        (OWNER, Consent.granted),
    ],
)
def test_admitted_partner_takes_part_at_once(partner: str, consent: Consent) -> None:
    case = make_case(consent=consent, partners=(CasePartner(REGISSEUR, PartnerStatus.actief, T0),))
    admitted = decide_admission(case, partner, now=LATER)
    assert admitted.partner_entry(partner) == CasePartner(partner, PartnerStatus.actief, LATER)


def test_readmitting_an_active_partner_is_a_conflict() -> None:
    case = make_case()
    with pytest.raises(ConflictError, match=POLICE):
        decide_admission(case, POLICE, now=LATER)


def test_readmitted_withdrawn_partner_is_active_again_with_one_entry() -> None:
    case = make_case(
        partners=(
            CasePartner(REGISSEUR, PartnerStatus.actief, T0),
            CasePartner(POLICE, PartnerStatus.teruggetrokken, T0),
        )
    )
    admitted = decide_admission(case, POLICE, now=LATER)
    assert [p.partner for p in admitted.partners].count(POLICE) == 1
    assert admitted.partner_entry(POLICE) == CasePartner(POLICE, PartnerStatus.actief, LATER)
    assert admitted.partner_entry(REGISSEUR) == case.partner_entry(REGISSEUR)


@pytest.mark.parametrize("status", sorted(FINAL_STATES), ids=str)
def test_no_partner_is_admitted_into_a_final_case(status: CaseStatus) -> None:
    case = make_case(status=status)
    with pytest.raises(ConflictError, match=status.value):
        decide_admission(case, CARE, now=LATER)


@pytest.mark.parametrize("status", sorted(set(CaseStatus) - FINAL_STATES), ids=str)
def test_partners_are_admitted_in_every_open_state(status: CaseStatus) -> None:
    admitted = decide_admission(make_case(status=status), CARE, now=LATER)
    assert admitted.is_visible_to(CARE)


# ---- consent -----------------------------------------------------------------


@pytest.mark.parametrize(
    "partner",
    [
        # the regisseur cannot consent on the owner's behalf
        REGISSEUR,
        # nor can another partner of the case
        POLICE,
        # nor a stranger to the case
        CARE,
    ],
)
def test_only_the_dwelling_owner_decides_consent(partner: str) -> None:
    with pytest.raises(NotFoundError):
        decide_consent(make_case(), partner, True, now=LATER)


@pytest.mark.parametrize(
    ("granted", "consent", "owner_status"),
    [
        # granted: the owner takes part
        (True, Consent.granted, PartnerStatus.actief),
        # refused: the owner is out of the case
        (False, Consent.refused, PartnerStatus.teruggetrokken),
    ],
)
def test_owner_decision_sets_consent_and_its_own_participation(
    granted: bool, consent: Consent, owner_status: PartnerStatus
) -> None:
    case = make_case()
    decided = decide_consent(case, OWNER, granted, now=LATER)
    assert decided.consent == consent
    assert decided.partner_entry(OWNER) == CasePartner(OWNER, owner_status, LATER)
    assert decided.updated_at == LATER
    # The other partners are untouched.
    assert [p for p in decided.partners if p.partner != OWNER] == [
        p for p in case.partners if p.partner != OWNER
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # granted twice
        (True, True),
        # granted, then taken back by refusing
        (True, False),
        # refused, then granted after all
        (False, True),
        # refused twice
        (False, False),
    ],
)
def test_consent_is_decided_only_once(first: bool, second: bool) -> None:
    decided = decide_consent(make_case(), OWNER, first, now=LATER)
    with pytest.raises(ConflictError, match="already decided"):
        decide_consent(decided, OWNER, second, now=LATER)


def test_consent_is_not_asked_when_not_required() -> None:
    case = make_case(consent=Consent.not_required)
    with pytest.raises(ConflictError):
        decide_consent(case, OWNER, True, now=LATER)


# ---- visibility --------------------------------------------------------------


def test_absent_foreign_and_withdrawn_cases_look_the_same() -> None:
    withdrawn = make_case(
        partners=(
            CasePartner(REGISSEUR, PartnerStatus.actief, T0),
            CasePartner(POLICE, PartnerStatus.teruggetrokken, T0),
        )
    )
    messages = []
    for case, partner in [
        (None, POLICE),  # no such case
        (withdrawn, CARE),  # a case the partner never took part in
        (withdrawn, POLICE),  # a case the partner left
    ]:
        with pytest.raises(NotFoundError) as caught:
            require_visible(case, partner)
        messages.append((str(caught.value), caught.value.code, caught.value.public_detail))
    assert len(set(messages)) == 1


@pytest.mark.parametrize(
    "partner",
    [
        # the regisseur
        REGISSEUR,
        # an active partner
        POLICE,
        # the invited owner, so that it can decide on consent
        OWNER,
    ],
)
def test_partners_of_the_case_see_it(partner: str) -> None:
    case = make_case()
    assert require_visible(case, partner) is case


def test_only_the_cases_regisseur_directs_it() -> None:
    case = make_case()
    require_regisseur(case, REGISSEUR)
    with pytest.raises(ConflictError, match=POLICE):
        require_regisseur(case, POLICE)
