"""Every clause of the convenant becomes test cases (issue: clauses as regression tests).

For each exchange type in the example convenant, generated from the file:
* each role the clause names may ask (the regisseur, where the clause says so);
* every other role is refused;
* every listed field flows when the rules' facts allow it;
* an unlisted field never flows, and is not even named to the requester;
* every listed field tagged with any special category never flows (R2).

The real policies run in the embedded engine; a policy edit that breaks a
clause fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from broker.adapter_protocol import SPECIAL_CATEGORIES
from broker.convenant import Convenant, ExchangeType, PartnerRole, load_convenant
from broker.policy.decisions import parse_disclosure_decision, parse_exchange_decision
from broker.policy.embedded import EmbeddedPolicyEngine
from broker.policy.engine import PolicyBundle
from broker.policy.inputs import convenant_data
from broker.settings import PROJECT_ROOT
from tests.conftest import EXAMPLE_CONVENANT

CONVENANT = load_convenant(EXAMPLE_CONVENANT)
EXCHANGES = [e.id for e in CONVENANT.exchanges]
ROLES = [r.value for r in PartnerRole]


@pytest.fixture(scope="module")
def engine() -> EmbeddedPolicyEngine:
    bundle = PolicyBundle.from_directory(PROJECT_ROOT / "policies")
    return EmbeddedPolicyEngine(bundle.with_data(convenant_data(CONVENANT)))


def _partner_of(role: str, function: str | None = None) -> str:
    for partner in CONVENANT.partners:
        if partner.role.value == role and (function is None or partner.function == function):
            return partner.id
    raise LookupError(f"the example convenant has no partner with role {role!r}")


def _case(exchange: ExchangeType, requester: str) -> dict[str, Any]:
    provider = _partner_of(exchange.provider_role.value, exchange.provider_function)
    regisseur = next(p.id for p in CONVENANT.partners if p.regisseur)
    members = {regisseur, provider, requester}
    partners = []
    for member in sorted(members):
        partner = CONVENANT.partner(member)
        assert partner is not None
        partners.append(
            {
                "partner": member,
                "role": partner.role.value,
                "function": partner.function,
                "status": "actief",
            }
        )
    return {
        "id": "case_1",
        "kind": "complex",
        "status": "in_behandeling",
        "regisseur": regisseur,
        "dwelling_owner": provider
        if exchange.provider_role == PartnerRole.corporatie
        else "particulier",
        "consent": "granted"
        if exchange.provider_role == PartnerRole.corporatie
        else "not_required",
        "criteria": [1, 2],
        "partners": partners,
        "subjects": [{"ref": "og-1", "role": "overlastgever"}],
        # Facts that let every listed field flow where a rule asks for one.
        "events": ["bemiddeling_toestemming_melder", "bemiddeling_toestemming_overlastgever"],
        "urgent": False,
    }


def _requester_for(exchange: ExchangeType, role: str) -> str:
    # The regisseur is the gemeente partner; other roles use their first partner,
    # but never the provider itself.
    if role == "gemeente":
        return next(p.id for p in CONVENANT.partners if p.regisseur)
    provider = _partner_of(exchange.provider_role.value, exchange.provider_function)
    candidates = [p.id for p in CONVENANT.partners if p.role.value == role and p.id != provider]
    return candidates[0]


def _exchange_input(exchange: ExchangeType, requester: str) -> dict[str, Any]:
    partner = CONVENANT.partner(requester)
    assert partner is not None
    return {
        "exchange": {
            "id": "ex_1",
            "query": exchange.id,
            "purpose": "aanpak_woonoverlast",
            "period": None,
        },
        "requester": {
            "partner": requester,
            "role": partner.role.value,
            "function": partner.function,
            "user": "u",
            "user_function": "f",
        },
        "case": _case(exchange, requester),
        "subject": {"ref": "og-1"},
    }


def _field(name: str, category: str, boolean: bool | None = None) -> dict[str, Any]:
    return {"name": name, "category": category, "boolean": boolean, "texts": [], "oversized": False}


def _disclosure_input(exchange: ExchangeType, fields: list[dict[str, Any]]) -> dict[str, Any]:
    requester = next(p.id for p in CONVENANT.partners if p.regisseur)
    if "gemeente" not in {r.value for r in exchange.requester_roles}:
        requester = _requester_for(exchange, exchange.requester_roles[0].value)
    provider = _partner_of(exchange.provider_role.value, exchange.provider_function)
    partner = CONVENANT.partner(provider)
    assert partner is not None
    return {
        **_exchange_input(exchange, requester),
        "provider": {"partner": provider, "role": partner.role.value, "function": partner.function},
        "answer": {"subject_known": True, "fields": fields},
    }


def _facts_for_listed_fields() -> list[dict[str, Any]]:
    # The police answer says "no investigation"; care says "known".
    return [
        _field("lopend_onderzoek", "investigation", False),
        _field("bekend", "care_relation", True),
    ]


def _role_cases() -> list[tuple[str, str, bool]]:
    cases = []
    for exchange in CONVENANT.exchanges:
        allowed = {r.value for r in exchange.requester_roles}
        for role in ROLES:
            provider_only = all(
                p.role.value != role
                or p.id == _partner_of(exchange.provider_role.value, exchange.provider_function)
                for p in CONVENANT.partners
            )
            if provider_only:
                continue  # no partner of this role could ask anybody else
            cases.append((exchange.id, role, role in allowed))
    return cases


@pytest.mark.parametrize(("exchange_id", "role", "allowed"), _role_cases())
def test_clause_decides_who_may_ask(
    engine: EmbeddedPolicyEngine, exchange_id: str, role: str, allowed: bool
) -> None:
    exchange = CONVENANT.exchange(exchange_id)
    assert exchange is not None
    requester = _requester_for(exchange, role)
    decision = parse_exchange_decision(
        engine.evaluate("ketenbroker/exchange/decision", _exchange_input(exchange, requester))
    )
    assert decision.allow is allowed, [r.reason for r in decision.refusals]
    if allowed:
        assert decision.fields == exchange.fields
        assert decision.legal_basis == exchange.legal_basis.model_dump()
    else:
        assert decision.refusal.code == "exchange_not_allowed"


@pytest.mark.parametrize("exchange_id", EXCHANGES)
def test_every_listed_field_flows(engine: EmbeddedPolicyEngine, exchange_id: str) -> None:
    exchange = CONVENANT.exchange(exchange_id)
    assert exchange is not None
    facts = _facts_for_listed_fields()
    fact_names = {f["name"] for f in facts}
    listed = [
        _field(name, "care_relation", True) if name in fact_names else _field(name, "nuisance")
        for name in exchange.fields
    ]
    others = [f for f in facts if f["name"] not in exchange.fields]
    decision = parse_disclosure_decision(
        engine.evaluate(
            "ketenbroker/disclosure/decision", _disclosure_input(exchange, listed + others)
        )
    )
    assert set(exchange.fields) <= set(decision.disclose)


@pytest.mark.parametrize("exchange_id", EXCHANGES)
def test_unlisted_field_never_flows_nor_is_named(
    engine: EmbeddedPolicyEngine, exchange_id: str
) -> None:
    exchange = CONVENANT.exchange(exchange_id)
    assert exchange is not None
    fields = [_field("veld_buiten_convenant", "nuisance")]
    decision = parse_disclosure_decision(
        engine.evaluate("ketenbroker/disclosure/decision", _disclosure_input(exchange, fields))
    )
    assert decision.disclose == ()
    [withheld] = decision.withheld
    assert (withheld.code, withheld.visible) == ("not_in_convenant", False)


@pytest.mark.parametrize(
    ("exchange_id", "category"),
    [(e.id, c.value) for e in CONVENANT.exchanges for c in sorted(SPECIAL_CATEGORIES)],
)
def test_listed_field_in_a_special_category_never_flows(
    engine: EmbeddedPolicyEngine, exchange_id: str, category: str
) -> None:
    exchange = CONVENANT.exchange(exchange_id)
    assert exchange is not None
    fields = [_field(name, category) for name in exchange.fields]
    decision = parse_disclosure_decision(
        engine.evaluate("ketenbroker/disclosure/decision", _disclosure_input(exchange, fields))
    )
    assert decision.disclose == ()
    assert {w.field for w in decision.withheld if w.code == "special_category"} == set(
        exchange.fields
    )


def test_every_clause_is_covered() -> None:
    # A new exchange type in the convenant is picked up without editing this file.
    covered = {case[0] for case in _role_cases()}
    assert covered == set(EXCHANGES)
    assert isinstance(CONVENANT, Convenant)
