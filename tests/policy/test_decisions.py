"""Parsing policy results: only the documented shape counts; anything else fails closed.

An engine's answer is untrusted input to the broker: a result that is empty,
contradictory or oddly typed must never read as permission (style.md §13).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from broker.errors import PolicyUnavailableError
from broker.policy.decisions import (
    ExchangeDecision,
    Refusal,
    Withheld,
    parse_disclosure_decision,
    parse_exchange_decision,
)

LEGAL_BASIS = {"law": "Wet politiegegevens", "article": "art. 20 lid 1", "convenant_article": "5.3"}

PERMIT: dict[str, Any] = {
    "allow": True,
    "refusals": [],
    "provider": "politie-lekstroom",
    "fields": ["meldingen_aantal", "politie_inzet"],
    "legal_basis": LEGAL_BASIS,
    "processing_activity": "LEK-WO-03 Informatie politie aan casusregisseur",
    "flags": [],
}

NOT_PARTNER: dict[str, Any] = {
    "code": "not_case_partner",
    "reason": "You are not an active partner of this case.",
    "public_reason": "You are not an active partner of this case.",
    "rank": 1,
}

DENY: dict[str, Any] = {
    "allow": False,
    "refusals": [NOT_PARTNER],
    "provider": None,
    "fields": [],
    "legal_basis": None,
    "processing_activity": None,
    "flags": [],
}

DISCLOSURE: dict[str, Any] = {
    "disclose": ["meldingen_aantal"],
    "withheld": [
        {
            "field": "politie_inzet",
            "code": "special_category",
            "reason": "Special-category data (investigation) is never shared.",
            "public_reason": "Special-category personal data is never shared.",
            "visible": True,
        },
        {
            "field": "lopend_onderzoek",
            "code": "not_in_convenant",
            "reason": "The convenant does not list this field for this exchange.",
            "public_reason": "Not part of this exchange.",
            "visible": False,
        },
    ],
}


def changed(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(base)
    document.update(changes)
    return document


def without(base: dict[str, Any], key: str) -> dict[str, Any]:
    document = copy.deepcopy(base)
    del document[key]
    return document


def refusal(**changes: Any) -> dict[str, Any]:
    return {**NOT_PARTNER, **changes}


# ---- exchange decisions ------------------------------------------------------------


def test_valid_permit_is_parsed() -> None:
    decision = parse_exchange_decision(PERMIT)
    assert decision == ExchangeDecision(
        allow=True,
        refusals=(),
        provider="politie-lekstroom",
        fields=("meldingen_aantal", "politie_inzet"),
        legal_basis=LEGAL_BASIS,
        processing_activity="LEK-WO-03 Informatie politie aan casusregisseur",
        flags=(),
    )


def test_valid_refusal_is_parsed() -> None:
    decision = parse_exchange_decision(DENY)
    assert decision.allow is False
    assert decision.refusals == (Refusal(**NOT_PARTNER),)
    assert decision.provider is None
    assert decision.legal_basis is None


def test_missing_public_reason_falls_back_to_the_reason() -> None:
    document = changed(
        DENY, refusals=[{k: v for k, v in NOT_PARTNER.items() if k != "public_reason"}]
    )
    assert parse_exchange_decision(document).refusal.public_reason == NOT_PARTNER["reason"]


BROKEN_EXCHANGE: list[Any] = [
    # OPA's "undefined" shows up as an empty document
    pytest.param({}, id="undefined"),
    # no result at all
    pytest.param(None, id="none"),
    # a set of results instead of one decision
    pytest.param([PERMIT], id="list"),
    # a bare boolean
    pytest.param(True, id="bare-true"),
    # the verdict itself is missing
    pytest.param(without(PERMIT, "allow"), id="allow-missing"),
    # "true" as a string is not true
    pytest.param(changed(PERMIT, allow="true"), id="allow-string"),
    # 1 is not true either
    pytest.param(changed(PERMIT, allow=1), id="allow-one"),
    # allowed, yet refused: contradictory
    pytest.param(changed(PERMIT, refusals=[NOT_PARTNER]), id="allow-with-refusals"),
    # refused without saying why
    pytest.param(changed(DENY, refusals=[]), id="deny-without-refusals"),
    # refusals missing altogether
    pytest.param(without(DENY, "refusals"), id="refusals-missing"),
    # refusals as one object rather than a list
    pytest.param(changed(DENY, refusals=NOT_PARTNER), id="refusals-object"),
    # a refusal without a code
    pytest.param(changed(DENY, refusals=[refusal(code="")]), id="refusal-empty-code"),
    # nor any code key
    pytest.param(
        changed(DENY, refusals=[{k: v for k, v in NOT_PARTNER.items() if k != "code"}]),
        id="refusal-no-code",
    ),
    # a refusal without a reason
    pytest.param(
        changed(DENY, refusals=[{k: v for k, v in NOT_PARTNER.items() if k != "reason"}]),
        id="refusal-no-reason",
    ),
    # rank as a string would sort wrongly
    pytest.param(changed(DENY, refusals=[refusal(rank="1")]), id="rank-string"),
    # a rank that is missing
    pytest.param(
        changed(DENY, refusals=[{k: v for k, v in NOT_PARTNER.items() if k != "rank"}]),
        id="rank-missing",
    ),
    # a public reason that is not text
    pytest.param(changed(DENY, refusals=[refusal(public_reason=["x"])]), id="public-reason-list"),
    # a refusal that is not an object
    pytest.param(changed(DENY, refusals=["not_case_partner"]), id="refusal-string"),
    # allowed, but nothing to ask for
    pytest.param(changed(PERMIT, fields=[]), id="allow-no-fields"),
    # allowed, but nobody to ask
    pytest.param(changed(PERMIT, provider=None), id="allow-no-provider"),
    # allowed, but the provider is not a partner id
    pytest.param(changed(PERMIT, provider=["politie-lekstroom"]), id="allow-provider-list"),
    # allowed without a legal basis
    pytest.param(changed(PERMIT, legal_basis=None), id="allow-no-basis"),
    # a legal basis that is only a word
    pytest.param(changed(PERMIT, legal_basis="AVG"), id="allow-basis-string"),
    # the fields key missing
    pytest.param(without(PERMIT, "fields"), id="fields-missing"),
    # field names that are not strings
    pytest.param(changed(PERMIT, fields=["meldingen_aantal", 7]), id="field-number"),
    # field names nested
    pytest.param(changed(PERMIT, fields=[["meldingen_aantal"]]), id="field-list"),
    # flags that are not strings
    pytest.param(changed(PERMIT, flags=[True]), id="flag-bool"),
]


@pytest.mark.parametrize("result", BROKEN_EXCHANGE)
def test_malformed_exchange_decision_fails_closed(result: Any) -> None:
    with pytest.raises(PolicyUnavailableError):
        parse_exchange_decision(result)


@pytest.mark.parametrize(
    "flags",
    [
        # one string instead of a list: split into letters
        "acute",
        # an object: its keys would be taken as flags
        {"acute": True},
    ],
    ids=["string", "object"],
)
def test_flags_that_are_not_a_list_fail_closed(flags: Any) -> None:
    with pytest.raises(PolicyUnavailableError):
        parse_exchange_decision(changed(PERMIT, flags=flags))


def test_the_requester_is_told_the_lowest_ranked_refusal() -> None:
    refusals = [
        refusal(code="period_too_wide", rank=7),
        refusal(code="subject_not_in_case", rank=3),
        refusal(code="purpose_mismatch", rank=4),
        refusal(code="exchange_not_allowed", rank=2),
    ]
    decision = parse_exchange_decision(changed(DENY, refusals=refusals))
    assert decision.refusal.code == "exchange_not_allowed"
    # Order of the policy's output does not matter.
    decision = parse_exchange_decision(changed(DENY, refusals=list(reversed(refusals))))
    assert decision.refusal.code == "exchange_not_allowed"


def test_equal_ranks_are_broken_by_code_not_by_output_order() -> None:
    first = refusal(code="consent_pending", rank=6, reason="pending")
    second = refusal(code="case_closed", rank=6, reason="closed")
    for order in ([first, second], [second, first]):
        assert parse_exchange_decision(changed(DENY, refusals=order)).refusal.code == "case_closed"


# ---- disclosure decisions --------------------------------------------------------------


def test_valid_disclosure_is_parsed() -> None:
    decision = parse_disclosure_decision(DISCLOSURE)
    assert decision.disclose == ("meldingen_aantal",)
    assert decision.withheld == (
        Withheld(
            field="politie_inzet",
            code="special_category",
            reason="Special-category data (investigation) is never shared.",
            public_reason="Special-category personal data is never shared.",
            visible=True,
        ),
        Withheld(
            field="lopend_onderzoek",
            code="not_in_convenant",
            reason="The convenant does not list this field for this exchange.",
            public_reason="Not part of this exchange.",
            visible=False,
        ),
    )


@pytest.mark.parametrize(
    "visible",
    [
        # only JSON true makes a withheld field visible
        "true",
        # 1 is not true
        1,
        # absent
        None,
    ],
)
def test_withheld_field_is_invisible_unless_visible_is_exactly_true(visible: Any) -> None:
    item = {**DISCLOSURE["withheld"][0], "visible": visible}
    if visible is None:
        del item["visible"]
    decision = parse_disclosure_decision(changed(DISCLOSURE, withheld=[item]))
    assert decision.withheld[0].visible is False


def _withheld(**changes: Any) -> list[dict[str, Any]]:
    return [{**DISCLOSURE["withheld"][0], **changes}]


def _withheld_without(key: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in DISCLOSURE["withheld"][0].items() if k != key}]


BROKEN_DISCLOSURE: list[Any] = [
    # OPA's "undefined"
    pytest.param({}, id="undefined"),
    # no result
    pytest.param(None, id="none"),
    # a list of decisions
    pytest.param([DISCLOSURE], id="list"),
    # what to disclose is missing
    pytest.param(without(DISCLOSURE, "disclose"), id="disclose-missing"),
    # what to withhold is missing: cannot tell the requester or the log
    pytest.param(without(DISCLOSURE, "withheld"), id="withheld-missing"),
    # one field both disclosed and withheld
    pytest.param(changed(DISCLOSURE, disclose=["meldingen_aantal", "politie_inzet"]), id="overlap"),
    # a field name that is not a string
    pytest.param(changed(DISCLOSURE, disclose=[1]), id="disclose-number"),
    # disclose as an object of flags
    pytest.param(changed(DISCLOSURE, disclose={"meldingen_aantal": True}), id="disclose-object"),
    # a withheld field without a name
    pytest.param(changed(DISCLOSURE, withheld=_withheld_without("field")), id="withheld-no-field"),
    # a withheld field name that is not a string
    pytest.param(changed(DISCLOSURE, withheld=_withheld(field=3)), id="withheld-field-number"),
    # withheld without a code for the audit log
    pytest.param(changed(DISCLOSURE, withheld=_withheld_without("code")), id="withheld-no-code"),
    # withheld without a reason
    pytest.param(
        changed(DISCLOSURE, withheld=_withheld_without("reason")), id="withheld-no-reason"
    ),
    # a withheld entry that is only a name
    pytest.param(changed(DISCLOSURE, withheld=["politie_inzet"]), id="withheld-string"),
]


@pytest.mark.parametrize("result", BROKEN_DISCLOSURE)
def test_malformed_disclosure_decision_fails_closed(result: Any) -> None:
    with pytest.raises(PolicyUnavailableError):
        parse_disclosure_decision(result)


@pytest.mark.parametrize(
    "public_reason",
    [
        # a number
        42,
        # an object, which could carry the internal reason to the requester
        {"internal": "lopend onderzoek"},
        # JSON null
        None,
    ],
    ids=["number", "object", "null"],
)
def test_withheld_public_reason_that_is_not_text_fails_closed(public_reason: Any) -> None:
    with pytest.raises(PolicyUnavailableError):
        parse_disclosure_decision(
            changed(DISCLOSURE, withheld=_withheld(public_reason=public_reason))
        )
