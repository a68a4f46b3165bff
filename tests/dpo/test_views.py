"""The DPO's pages as rendered HTML: escaped values, a real chart, nothing the CSP would block."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from broker.dpo.aggregate import PeriodCount, summarise
from broker.dpo.dashboard import (
    CaseFacts,
    DestructionRow,
    Integrity,
    OverdueRow,
    Overview,
    SearchResult,
    SubjectLink,
)
from broker.dpo.session import DpoSession
from broker.dpo.views import (
    STYLESHEET,
    activity_chart,
    nice_scale,
    render_error,
    render_login,
    render_overview,
    render_search,
)
from tests.dpo.pagetext import number, parse
from tests.dpo.test_aggregate import TODAY, edge, exchange, refused

NOW = datetime(2026, 11, 4, 12, 0, tzinfo=UTC)
SESSION = DpoSession(principal="fg-lekstroom", expires_at=NOW + timedelta(minutes=5))
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
NAMES = {"gemeente-lekstroom": "Gemeente Lekstroom", "politie-lekstroom": "Politie"}


def integrity(*, verified: bool = True, size: int = 7) -> Integrity:
    return Integrity(
        size=size,
        root_hash="ab" * 32,
        time="2026-11-04T12:00:00.000000Z",
        key_id="kid-1",
        signature_ok=verified,
        entries_ok=verified,
        problems=() if verified else ("root at size 7: the entries give 00ff",),
    )


def overview(entries: list[dict[str, Any]], **kw: Any) -> Overview:
    return Overview(
        now=NOW,
        convenant="Convenant aanpak woonoverlast regio Lekstroom",
        convenant_version="2026.1",
        integrity=kw.get("integrity", integrity(size=len(entries))),
        summary=summarise(entries, today=TODAY),
        overdue=kw.get("overdue", ()),
        destructions=kw.get("destructions", ()),
    )


def hostile_entries() -> list[dict[str, Any]]:
    """Untrusted text everywhere an entry can carry it."""
    blocked = exchange(
        0,
        decision="partial",
        case=HOSTILE,
        requester=HOSTILE,
        provider=HOSTILE,
        disclosed=[HOSTILE],
        withheld=[{"field": HOSTILE, "code": "special_category"}],
        legal_basis={"law": HOSTILE, "article": HOSTILE, "convenant_article": HOSTILE},
    )
    denied = refused(1, HOSTILE)
    denied["query"] = HOSTILE
    at_edge = edge(2, "invalid_client", detail=f"expected a client, got {HOSTILE!r}")
    at_edge["event"] = HOSTILE
    at_edge["time"] = HOSTILE
    return [blocked, denied, at_edge]


def assert_inert(page: str) -> None:
    """No markup from the data survived, and nothing the CSP forbids is on the page."""
    assert "<script" not in page
    assert "<img" not in page
    assert "onerror=" not in page.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;" in page
    assert " style=" not in page  # style-src 'self': an inline style attribute would be blocked
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page


def test_overview_escapes_every_value_from_the_log() -> None:
    page = render_overview(
        overview(
            hostile_entries(),
            overdue=(OverdueRow(case=HOSTILE, kind=HOSTILE, due=HOSTILE, days_late=1),),
            destructions=(DestructionRow(case=HOSTILE, due=HOSTILE, reason=HOSTILE, overdue=True),),
        ),
        session=DpoSession(principal=HOSTILE, expires_at=NOW),
        partner_names={HOSTILE: HOSTILE},
    )
    assert_inert(page)
    # ...and the text is still there for the DPO to read.
    assert HOSTILE in parse(page).by_id("refusals-table").text()


def test_search_escapes_the_query_and_the_entries() -> None:
    result = SearchResult(
        query=HOSTILE,
        kind="case",
        cases=(CaseFacts(HOSTILE, HOSTILE, HOSTILE, HOSTILE, HOSTILE, True),),
        subjects=(SubjectLink(case=HOSTILE, ref=HOSTILE, role=HOSTILE, pseudonym=HOSTILE),),
        entries=tuple(hostile_entries()),
        matched=3,
    )
    page = render_search(result, session=SESSION, now=NOW)
    assert_inert(page)
    assert parse(page).by_id("query").text() == HOSTILE


def test_invalid_search_term_is_shown_escaped() -> None:
    page = render_search(SearchResult(HOSTILE, "invalid", (), (), (), 0), session=SESSION, now=NOW)
    assert_inert(page)
    assert "geen casusnummer" in parse(page).by_id("search-help").text()


def test_login_and_error_pages_escape_their_messages() -> None:
    for page in (
        render_login(error=HOSTILE),
        render_login(notice=HOSTILE),
        render_error(title=HOSTILE, message=HOSTILE),
    ):
        assert_inert(page)


def test_overview_shows_every_panel_with_its_figures() -> None:
    entries = [
        exchange(0, disclosed=["meldingen_aantal", "politie_inzet"]),
        exchange(1, decision="partial", withheld=[{"field": "m", "code": "special_category_text"}]),
        refused(2, "purpose_mismatch"),
        refused(3, "purpose_mismatch"),
        edge(4, "invalid_token"),
    ]
    doc = parse(
        render_overview(
            overview(
                entries,
                overdue=(OverdueRow("case_x", "intake_decision", "2026-11-01T09:00:00+00:00", 3),),
                destructions=(
                    DestructionRow("case_y", "2026-11-20", "closed_5_years", overdue=False),
                    DestructionRow(
                        "case_z", "2026-11-01", "not_complex_after_5_working_days", overdue=True
                    ),
                ),
            ),
            session=SESSION,
            partner_names=NAMES,
        )
    )
    for panel in (
        "panel-integrity",
        "panel-activity",
        "panel-reasons",
        "panel-disclosures",
        "panel-special",
        "panel-overdue",
        "panel-destructions",
        "panel-recent-refusals",
    ):
        assert doc.by_id(panel).text(), panel
    assert doc.by_id("log-size").attrs["data-value"] == "5"
    assert doc.by_id("integrity-status").text() == "Geverifieerd"
    assert number(doc.by_id("card-exchanged").one("span", **{"class": "card-value"}).text()) == 2
    assert number(doc.by_id("card-refused").one("span", **{"class": "card-value"}).text()) == 3
    reasons = {
        row.attrs["data-reason"]: [number(td.text()) for td in row.find_all("td")[1:]]
        for row in doc.by_id("reasons-table").find_all("tr")
        if "data-reason" in row.attrs
    }
    assert reasons == {"purpose_mismatch": [2, 0, 2], "invalid_token": [0, 1, 1]}
    (disclosure,) = doc.by_id("disclosures-table").find_all(
        "tr", data_recipient="gemeente-lekstroom"
    )
    assert number(disclosure.one("td", data_count="exchanges").text()) == 2
    assert "Gemeente Lekstroom" in disclosure.text()
    assert "Wet politiegegevens art. 20 lid 1 · convenant art. 5.3" in disclosure.text()
    special = doc.by_id("panel-special").one("li", data_code="special_category_text")
    assert number(special.one("span", **{"class": "big"}).text()) == 1
    (late,) = doc.by_id("overdue-table").find_all("tr", data_case="case_x")
    assert "Besluit na intake" in late.text() and "01-11-2026 09:00:00" in late.text()
    assert number(late.one("td", **{"class": "num late"}).text()) == 3
    destructions = doc.by_id("destructions-table")
    (due,) = destructions.find_all("tr", data_case="case_y")
    assert "20-11-2026" in due.text() and "te laat" not in due.text()
    assert "Afgesloten, bewaartermijn verstreken" in due.text()
    (overdue,) = destructions.find_all("tr", data_overdue="true")
    assert overdue.attrs["data-case"] == "case_z" and "te laat" in overdue.text()


def test_unverified_log_says_so_and_lists_the_problems() -> None:
    doc = parse(
        render_overview(
            overview([exchange(0)], integrity=integrity(verified=False)),
            session=SESSION,
            partner_names=NAMES,
        )
    )
    status = doc.by_id("integrity-status")
    assert status.text() == "Niet geverifieerd"
    assert status.attrs["data-verified"] == "false"
    assert "the entries give 00ff" in doc.by_id("integrity-problems").text()


@pytest.mark.parametrize(
    ("largest", "step", "top"),
    [
        (0, 1, 1),  # an empty chart still has an axis
        (1, 1, 1),
        (5, 1, 5),
        (6, 2, 6),
        (11, 5, 15),
        (99, 20, 100),
        (1234, 500, 1500),
    ],
)
def test_chart_scale_uses_round_steps(largest: int, step: int, top: int) -> None:
    assert nice_scale(largest) == (step, top)


def test_chart_draws_two_bars_per_period_in_proportion() -> None:
    periods = [
        PeriodCount(date(2026, 11, 1), exchanged=4, refused=1),
        PeriodCount(date(2026, 11, 2), exchanged=0, refused=0),
        PeriodCount(date(2026, 11, 3), exchanged=2, refused=4),
    ]
    svg = parse(activity_chart(periods, unit="day")).one("svg")
    bars = [n for n in svg.find_all("rect") if "bar" in (n.attrs.get("class") or "")]
    assert [int(b.attrs["data-value"] or 0) for b in bars] == [4, 1, 0, 0, 2, 4]
    heights = [float(b.attrs["height"] or 0) for b in bars]
    assert heights[0] == pytest.approx(2 * heights[4]) and heights[0] == heights[5]
    assert heights[2] == heights[3] == 0
    assert svg.one("title", id="chart-title").text() == "Uitwisselingen en weigeringen per dag"
    labels = [t.text() for t in svg.find_all("text", **{"class": "label"})]
    assert labels == ["1 nov", "2 nov", "3 nov"]


def test_week_chart_labels_iso_weeks() -> None:
    periods = [PeriodCount(date(2026, 10, 26), 1, 0), PeriodCount(date(2026, 11, 2), 0, 1)]
    svg = parse(activity_chart(periods, unit="week")).one("svg")
    assert [t.text() for t in svg.find_all("text", **{"class": "label"})] == ["wk 44", "wk 45"]


def test_stylesheet_loads_nothing_from_elsewhere() -> None:
    assert not re.search(r"url\(|@import|https?://", STYLESHEET)
