"""The AVG art. 15 access report, built from synthetic entries (broker.audit.access_report)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from broker.audit.access_report import (
    REPORT_TITLE,
    AccessReport,
    build_access_report,
    render_access_report_html,
)
from broker.audit.entries import exchange_entry, security_event
from broker.audit.holds import hold_entry
from broker.cases.crypto import new_data_key, pseudonym
from broker.convenant import Convenant
from tests.audit.conftest import T0

CASE = "case_0123456789abcdef0123456789abcdef"
OTHER_CASE = "case_ffffffffffffffffffffffffffffffff"
GEMEENTE = "gemeente-lekstroom"
POLITIE = "politie-lekstroom"
CORPORATIE = "woonstichting-de-linge"
OFFICIAL = {"partner": GEMEENTE, "user": "j.devries", "function": "casusregisseur wijk Noord"}
KEY = new_data_key()
OG = pseudonym(KEY, "og-1")
MELDER = pseudonym(KEY, "m-1")
POLICE_BASIS = {
    "law": "Wet politiegegevens",
    "article": "art. 20 lid 1",
    "convenant_article": "5.3",
}


def _exchange(
    n: int,
    *,
    subject: str | None = OG,
    case: str = CASE,
    decision: str = "permit",
    requester: dict[str, str | None] | None = None,
    provider: str | None = POLITIE,
    query: str = "politie.meldingen",
    disclosed: list[str] | None = None,
    withheld: list[dict[str, str]] | None = None,
    reasons: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    entry = exchange_entry(
        time=T0 + timedelta(minutes=n),
        exchange_id=f"ex_{n:032x}",
        trace_id=f"{n:032x}",
        convenant={"id": "convenant-woonoverlast-lekstroom", "version": "2026.1"},
        processing_activity="LEK-WO-03 Informatie politie aan casusregisseur",
        legal_basis=POLICE_BASIS if decision != "deny" else None,
        requester=requester or OFFICIAL,
        provider=provider,
        case=case,
        subject=subject,
        query=query,
        purpose="aanpak_woonoverlast",
        decision=decision,
        reasons=reasons or [],
        fields_disclosed=disclosed if disclosed is not None else ["meldingen_aantal"],
        fields_withheld=withheld or [],
        policy_version="sha256:policy",
        payload_hash=f"sha256:{n:064x}" if decision != "deny" else None,
    )
    return {**entry, "index": n}


def _report(
    entries: list[dict[str, Any]],
    convenant: Convenant,
    *,
    held: frozenset[int] = frozenset(),
    ref: str = "og-1",
    subject: str = OG,
) -> AccessReport:
    return build_access_report(
        entries,
        case_id=CASE,
        subject_ref=ref,
        subject_pseudonym=subject,
        held=held,
        convenant=convenant,
        now=T0 + timedelta(days=1),
    )


def _story() -> list[dict[str, Any]]:
    """Two subjects in one case, another case, a refusal and an edge event."""
    return [
        _exchange(0, disclosed=["meldingen_aantal", "politie_inzet"]),
        _exchange(1, subject=MELDER, disclosed=["meldingen"]),
        _exchange(
            2,
            decision="deny",
            requester={"partner": CORPORATIE, "user": "k.bos", "function": "consulent"},
            provider=None,
            reasons=[{"code": "not_case_partner", "reason": "Woonstichting vroeg om og-1"}],
        ),
        _exchange(3, case=OTHER_CASE, disclosed=["fysiek_geweld_omwonenden"]),
        {
            **security_event(
                time=T0,
                event="GET /v1/x",
                code="invalid_token",
                principal=None,
                trace_id="0" * 32,
                detail="og-1",
            ),
            "index": 4,
        },
        _exchange(
            5,
            decision="partial",
            disclosed=["meldingen_aantal"],
            withheld=[{"field": "meldingen", "code": "special_category_text"}],
        ),
    ]


def test_report_lists_only_the_asked_subjects_exchanges(convenant: Convenant) -> None:
    report = _report(_story(), convenant)
    assert [d.log_index for d in report.disclosures] == [0, 5]
    assert [r.log_index for r in report.refusals] == [2]
    assert report.disclosures[0].fields_disclosed == ("meldingen_aantal", "politie_inzet")
    melder = _report(_story(), convenant, ref="m-1", subject=MELDER)
    assert [d.log_index for d in melder.disclosures] == [1]
    assert melder.refusals == ()


def test_disclosure_names_partners_basis_activity_and_purpose(convenant: Convenant) -> None:
    [first, _] = _report(_story(), convenant).to_dict()["disclosures"]
    assert first == {
        "log_index": 0,
        "time": "2026-05-01T12:00:00.000000Z",
        "requester": {"partner": GEMEENTE, "name": "Gemeente Lekstroom, team Woonoverlast"},
        "provider": {
            "partner": POLITIE,
            "name": "Politie eenheid Rivierenland, basisteam Lekstroom",
        },
        "query": "politie.meldingen",
        "exchange_title": "Meldingen en politie-inzet bij woonoverlast",
        "fields_disclosed": ["meldingen_aantal", "politie_inzet"],
        "legal_basis": POLICE_BASIS,
        "processing_activity": "LEK-WO-03 Informatie politie aan casusregisseur",
        "purpose": "aanpak_woonoverlast",
    }


def test_refusal_carries_codes_never_reason_text(convenant: Convenant) -> None:
    entries = [
        *_story(),
        _exchange(
            6,
            decision="deny",
            reasons=[
                {"code": "period_too_wide", "reason": "Marco de Wit vroeg te veel"},
                {"code": "Marco de Wit <b>", "reason": "not a code"},
            ],
        ),
    ]
    refusals = _report(entries, convenant).to_dict()["refusals"]
    assert [r["reasons"] for r in refusals] == [
        ["not_case_partner"],
        ["period_too_wide", "unknown"],
    ]
    assert refusals[0]["requester"] == {"partner": CORPORATIE, "name": "Woonstichting De Linge"}
    assert "Marco" not in json.dumps(refusals)


@pytest.mark.parametrize(
    ("code", "shown"),
    [
        ("special_category", "special_category"),  # R2: the requester was told the same
        ("unknown_category", "special_category"),  # told the requester as special category
        ("special_category_text", "special_category"),
        ("text_too_long", "special_category"),
        ("investigation_running", None),  # R3: would tip off the subject of an investigation
        ("not_in_convenant", None),  # invisible to the requester: naming it discloses
        ("care_not_known", None),  # a care relationship is health data
        ("mediation_consent_missing", None),  # says whether the other party consented
        ("a_future_rule", None),  # allow-list: an unknown code is not shown
    ],
)
def test_withheld_summary_shows_only_what_reveals_nothing(
    convenant: Convenant, code: str, shown: str | None
) -> None:
    entries = [_exchange(0, decision="partial", withheld=[{"field": "veld", "code": code}])]
    withheld = _report(entries, convenant).to_dict()["withheld"]
    expected = (
        []
        if shown is None
        else [
            {
                "query": "politie.meldingen",
                "exchange_title": "Meldingen en politie-inzet bij woonoverlast",
                "field": "veld",
                "reason": shown,
                "count": 1,
            }
        ]
    )
    assert withheld == expected
    page = render_access_report_html(_report(entries, convenant))
    assert code not in page  # the letter explains in Dutch; the rule's code stays internal
    assert ("veld" in page) == (shown is not None)


def test_withheld_fields_are_counted_per_exchange_type(convenant: Convenant) -> None:
    special = [{"field": "meldingen", "code": "special_category_text"}]
    entries = [_exchange(n, decision="partial", withheld=special) for n in range(3)]
    [summary] = _report(entries, convenant).withheld
    assert (summary.field, summary.reason, summary.count) == ("meldingen", "special_category", 3)


def test_held_entry_leaves_no_trace_in_the_report(convenant: Convenant) -> None:
    # Counted nowhere: the report with entry 5 held equals the report without it.
    entries = _story()
    held = _report(entries, convenant, held=frozenset({5}))
    absent = _report([e for e in entries if e["index"] != 5], convenant)
    assert held == absent
    assert render_access_report_html(held) == render_access_report_html(absent)
    assert held.withheld == ()


def test_held_refusal_leaves_no_trace_either(convenant: Convenant) -> None:
    assert _report(_story(), convenant, held=frozenset({2})).refusals == ()


def test_hold_markers_in_the_entries_are_not_reported(convenant: Convenant) -> None:
    marker = {
        **hold_entry(time=T0, entry=0, set_by=POLITIE, reason="onderzoek Marco"),
        "index": 9,
    }
    report = _report([*_story(), marker], convenant)
    assert report == _report(_story(), convenant)


def test_report_holds_no_pseudonym_official_or_free_text(convenant: Convenant) -> None:
    report = _report(_story(), convenant)
    document = json.dumps(report.to_dict(), ensure_ascii=False)
    page = render_access_report_html(report)
    for text in (document, page):
        assert MELDER not in text  # the other subject
        assert OG not in text  # the subject's own pseudonym is the log's, not the letter's
        assert "ps_" not in text
        for secret in ("j.devries", "casusregisseur wijk Noord", "k.bos", "consulent"):
            assert secret not in text  # officials of the partners
        assert "Woonstichting vroeg" not in text  # refusal reason text
        assert "sha256:" not in text  # payload hashes, policy version
        assert "ex_" not in text  # exchange ids
        assert "fysiek_geweld_omwonenden" not in text  # another case


def test_ref_without_entries_gets_an_empty_report_with_rights(convenant: Convenant) -> None:
    report = _report(_story(), convenant, ref="x-9", subject=pseudonym(KEY, "x-9"))
    document = report.to_dict()
    assert (document["disclosures"], document["refusals"], document["withheld"]) == ([], [], [])
    assert {r["right"] for r in document["rights"]} >= {"rectificatie", "wissing", "bezwaar"}
    assert document["subject"] == "x-9"
    assert document["case"] == CASE
    assert document["generated"] == "2026-05-02T12:00:00.000000Z"


def test_html_escapes_hostile_convenant_and_entry_values(convenant: Convenant) -> None:
    hostile = convenant.model_copy(
        update={
            "partners": tuple(
                p.model_copy(update={"name": "<script>alert('naam')</script>"})
                if p.id == POLITIE
                else p
                for p in convenant.partners
            )
        }
    )
    entries = [
        _exchange(0, disclosed=['<img src=x onerror="alert(1)">']),
        _exchange(
            1, decision="partial", withheld=[{"field": "<b>x</b>", "code": "special_category"}]
        ),
    ]
    page = render_access_report_html(_report(entries, hostile, ref="og-1<i>"))
    assert "<script" not in page
    assert "<img" not in page
    assert "<b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(&#x27;naam&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


def test_html_is_a_self_contained_dutch_letter(convenant: Convenant) -> None:
    page = render_access_report_html(_report(_story(), convenant))
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="nl">' in page
    assert REPORT_TITLE in page
    assert "://" not in page  # nothing fetched from anywhere
    assert "<script" not in page and "<link" not in page and "src=" not in page
    assert "default-src 'none'" in page
    for text in (
        "Gemeente Lekstroom, team Woonoverlast",
        "meldingen_aantal",
        "Wet politiegegevens art. 20 lid 1",
        "De verzoeker neemt niet deel aan deze casus.",
        "Autoriteit Persoonsgegevens",
        "01-05-2026 12:00 UTC",
    ):
        assert text in page
