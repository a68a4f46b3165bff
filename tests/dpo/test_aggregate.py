"""The dashboard's figures from synthetic audit entries: each counting rule, each edge."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from broker.dpo.aggregate import (
    MAX_PERIODS,
    NO_REASON,
    UNKNOWN,
    LegalBasisKey,
    about_subject,
    cases_of_subject,
    entry_day,
    period_starts,
    summarise,
)

TODAY = date(2026, 11, 4)  # a Wednesday
WPG = {"law": "Wet politiegegevens", "article": "art. 20 lid 1", "convenant_article": "art. 5.3"}
AVG_E = {"law": "AVG", "article": "art. 6 lid 1 sub e", "convenant_article": "art. 5.6"}


def exchange(
    index: int,
    *,
    day: str = "2026-11-04",
    decision: str = "permit",
    requester: str = "gemeente-lekstroom",
    provider: str | None = "politie-lekstroom",
    disclosed: list[str] | None = None,
    withheld: list[dict[str, str]] | None = None,
    reasons: list[dict[str, str]] | None = None,
    legal_basis: dict[str, str] | None = None,
    case: str = "case_a",
    subject: str | None = "ps_1",
) -> dict[str, Any]:
    return {
        "index": index,
        "kind": "exchange",
        "time": f"{day}T10:00:00.000000Z",
        "exchange": f"ex_{index}",
        "requester": {"partner": requester, "user": "j.devries", "function": "casusregisseur"},
        "provider": {"partner": provider},
        "case": case,
        "subject": subject,
        "query": "politie.meldingen",
        "decision": decision,
        "reasons": reasons or [],
        "fields_disclosed": disclosed if disclosed is not None else ["meldingen_aantal"],
        "fields_withheld": withheld or [],
        "legal_basis": legal_basis if legal_basis is not None else WPG,
    }


def refused(index: int, *codes: str, day: str = "2026-11-04") -> dict[str, Any]:
    return exchange(
        index,
        day=day,
        decision="deny",
        disclosed=[],
        reasons=[{"code": code, "reason": f"because {code}"} for code in codes],
    )


def edge(index: int, code: str, *, day: str = "2026-11-04", detail: str = "d") -> dict[str, Any]:
    return {
        "index": index,
        "kind": "security_event",
        "time": f"{day}T11:00:00.000000Z",
        "event": "POST /oauth/token",
        "decision": "deny",
        "reasons": [{"code": code, "detail": detail}],
        "requester": {"partner": None},
        "trace_id": "0" * 32,
    }


def test_exchanges_and_refusals_are_counted_per_day_without_gaps() -> None:
    entries = [
        exchange(0, day="2026-11-04"),
        exchange(1, day="2026-11-04", decision="partial"),
        refused(2, "purpose_mismatch", day="2026-11-02"),
        edge(3, "invalid_token", day="2026-11-02"),
        exchange(4, day="2026-10-01"),  # outside the window: in the totals only
    ]
    summary = summarise(entries, today=TODAY, unit="day", periods=5)
    assert [p.start for p in summary.activity] == [
        date(2026, 10, 31),
        date(2026, 11, 1),
        date(2026, 11, 2),
        date(2026, 11, 3),
        date(2026, 11, 4),
    ]
    assert [(p.exchanged, p.refused) for p in summary.activity] == [
        (0, 0),
        (0, 0),
        (0, 2),
        (0, 0),
        (2, 0),
    ]
    totals = summary.totals
    assert (totals.entries, totals.exchanged, totals.permitted, totals.partial) == (5, 3, 2, 1)
    assert (totals.refused, totals.refused_exchanges, totals.refused_at_edge) == (2, 1, 1)


def test_weeks_start_on_monday_iso_8601() -> None:
    entries = [
        exchange(0, day="2026-11-01"),  # Sunday: the week of 26 October
        exchange(1, day="2026-11-02"),  # Monday: a new week
        refused(2, "case_closed", day="2026-11-04"),
    ]
    summary = summarise(entries, today=TODAY, unit="week", periods=2)
    assert [(p.start, p.exchanged, p.refused) for p in summary.activity] == [
        (date(2026, 10, 26), 1, 0),
        (date(2026, 11, 2), 1, 1),
    ]


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        ("2026-11-04T10:00:00.000000Z", date(2026, 11, 4)),  # as the broker writes it
        ("2026-11-04T23:30:00-02:00", date(2026, 11, 5)),  # another zone counts in UTC
        ("2026-11-04T10:00:00", None),  # no zone: not placed in time
        ("yesterday", None),  # not a time at all
        (None, None),  # missing
    ],
)
def test_entry_day_is_the_utc_day_or_none(moment: str | None, day: date | None) -> None:
    assert entry_day({"time": moment}) == day


@pytest.mark.parametrize("periods", [0, -1, MAX_PERIODS + 1])
def test_chart_periods_are_bounded(periods: int) -> None:
    with pytest.raises(ValueError, match="periods"):
        period_starts(today=TODAY, unit="day", periods=periods)


def test_a_refusal_counts_once_under_each_distinct_reason() -> None:
    entries = [
        refused(0, "not_case_partner", "exchange_not_allowed", "exchange_not_allowed"),
        refused(1, "exchange_not_allowed"),
        edge(2, "invalid_client"),
        edge(3, "invalid_client"),
        edge(4, "exchange_not_allowed"),
    ]
    summary = summarise(entries, today=TODAY)
    by_code = {r.code: (r.exchange, r.edge, r.total) for r in summary.refusals_by_reason}
    assert by_code == {
        "exchange_not_allowed": (2, 1, 3),
        "invalid_client": (0, 2, 2),
        "not_case_partner": (1, 0, 1),
    }
    # Most refusals first, then by code: the order the page shows.
    assert [r.code for r in summary.refusals_by_reason] == [
        "exchange_not_allowed",
        "invalid_client",
        "not_case_partner",
    ]


def test_a_refusal_without_a_reason_is_shown_as_a_finding() -> None:
    entry = refused(0)
    entry["reasons"] = []
    summary = summarise([entry], today=TODAY)
    assert [(r.code, r.total) for r in summary.refusals_by_reason] == [(NO_REASON, 1)]
    assert summary.recent_refusals[0].codes == (NO_REASON,)


def test_disclosures_are_grouped_by_recipient_provider_and_legal_basis() -> None:
    entries = [
        exchange(0, disclosed=["meldingen_aantal", "politie_inzet"]),
        exchange(1, decision="partial", disclosed=["meldingen_aantal"]),
        exchange(2, provider="buurtteam-lekstroom", disclosed=["bekend"], legal_basis=AVG_E),
        exchange(3, disclosed=[]),  # answered, but nothing disclosed: not a disclosure
        refused(4, "case_closed"),  # refused: never a disclosure
    ]
    summary = summarise(entries, today=TODAY)
    rows = [
        (d.recipient, d.provider, d.legal_basis, d.exchanges, d.fields_disclosed, d.fields)
        for d in summary.disclosures
    ]
    assert rows == [
        (
            "gemeente-lekstroom",
            "politie-lekstroom",
            LegalBasisKey(**WPG),
            2,
            3,
            ("meldingen_aantal", "politie_inzet"),
        ),
        (
            "gemeente-lekstroom",
            "buurtteam-lekstroom",
            LegalBasisKey(**AVG_E),
            1,
            1,
            ("bekend",),
        ),
    ]


def test_special_category_blocks_count_only_the_r2_codes() -> None:
    entries = [
        exchange(
            0,
            decision="partial",
            withheld=[
                {"field": "meldingen", "code": "special_category_text"},
                {"field": "interne_notitie", "code": "not_in_convenant"},  # not R2
                {"field": "strafblad", "code": "special_category"},
            ],
        ),
        exchange(
            1,
            decision="partial",
            provider="ggd-lekstroom",
            withheld=[{"field": "mystery", "code": "unknown_category"}],
        ),
        exchange(2, decision="partial", withheld=[{"field": "x", "code": "special_category"}]),
    ]
    special = summarise(entries, today=TODAY, recent=2).special_categories
    assert special.by_code == (
        ("special_category", 2),
        ("special_category_text", 1),
        ("unknown_category", 1),
    )
    assert special.total == 4
    assert special.by_provider == (("politie-lekstroom", 3), ("ggd-lekstroom", 1))
    # The newest first, as many as asked.
    assert [(b.index, b.field, b.code) for b in special.recent] == [
        (2, "x", "special_category"),
        (1, "mystery", "unknown_category"),
    ]


def test_special_category_counts_are_zero_filled_when_nothing_was_blocked() -> None:
    special = summarise([exchange(0)], today=TODAY).special_categories
    assert special.by_code == (
        ("special_category", 0),
        ("special_category_text", 0),
        ("unknown_category", 0),
    )
    assert special.total == 0
    assert special.recent == ()


def test_latest_refusals_are_newest_first_and_bounded() -> None:
    entries = [edge(i, "invalid_token", detail=f"attempt {i}") for i in range(15)]
    recent = summarise(entries, today=TODAY, recent=3).recent_refusals
    assert [(r.index, r.detail, r.kind, r.what) for r in recent] == [
        (14, "attempt 14", "security_event", "POST /oauth/token"),
        (13, "attempt 13", "security_event", "POST /oauth/token"),
        (12, "attempt 12", "security_event", "POST /oauth/token"),
    ]


@pytest.mark.parametrize(
    "entry",
    [
        {},  # nothing at all
        {"kind": "exchange", "decision": "permit", "requester": "not-a-mapping"},
        {"kind": "exchange", "decision": "partial", "fields_withheld": "not-a-list"},
        {"kind": "exchange", "decision": "partial", "fields_withheld": ["not-a-mapping"]},
        {"kind": "exchange", "decision": "deny", "reasons": [None, {"code": 7}]},
        {"kind": "exchange", "decision": "permit", "fields_disclosed": ["f"], "legal_basis": 3},
        {"index": True, "kind": "security_event", "decision": "deny", "reasons": "x"},
    ],
)
def test_malformed_entries_are_counted_not_fatal(entry: dict[str, Any]) -> None:
    summary = summarise([entry], today=TODAY)
    assert summary.totals.entries == 1


def test_a_disclosure_with_missing_partners_is_shown_as_unknown() -> None:
    entry = exchange(0, provider=None, legal_basis={})
    entry["requester"] = {}
    (row,) = summarise([entry], today=TODAY).disclosures
    assert (row.recipient, row.provider, row.legal_basis.law) == (UNKNOWN, UNKNOWN, UNKNOWN)


def test_subject_search_matches_the_pseudonym_exactly() -> None:
    entries = [
        exchange(0, subject="ps_1", case="case_a"),
        exchange(1, subject="ps_10", case="case_b"),  # a prefix is not a match
        exchange(2, subject="ps_1", case="case_c"),
        exchange(3, subject="ps_1", case="case_a"),
        exchange(4, subject=None, case="case_d"),
    ]
    assert [e["index"] for e in about_subject(entries, "ps_1")] == [0, 2, 3]
    assert cases_of_subject(entries, "ps_1") == ["case_a", "case_c"]


def test_an_empty_pseudonym_matches_nothing() -> None:
    # Fail closed: an empty search term must not match the entries without a subject.
    entries = [exchange(0, subject=""), exchange(1, subject=None)]
    assert list(about_subject(entries, "")) == []


def test_retention_and_hold_entries_are_counted_as_such_not_as_exchanges() -> None:
    entries = [
        exchange(0),
        {"index": 1, "kind": "retention", "decision": "destroyed", "case": "case_a"},
        {"index": 2, "kind": "hold", "decision": "hold", "entry": 0},
        {"index": 3, "kind": "hold_lifted", "decision": "hold_lifted", "entry": 0},
    ]
    totals = summarise(entries, today=TODAY).totals
    assert (totals.entries, totals.exchanged, totals.refused) == (4, 1, 0)
    assert (totals.destroyed, totals.holds) == (1, 1)
