"""The DPO's dashboard over real HTTP: the login flow, each panel against the log, the headers.

Every backend of the `stack` fixture runs these. The panels are checked
against the entries the audit API returns, counted here by plain code, not
by the dashboard's own aggregation.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from adapters.sdk.client import BrokerClient
from broker.auth.tokens import AccessTokenIssuer
from broker.cases.model import CaseStatus
from broker.cases.requests import CreateCaseRequest
from broker.cli import main
from broker.dpo.session import SESSION_COOKIE
from broker.keys import KeyStore
from broker.stack import LocalStack
from tests.dpo.pagetext import Node, number, parse
from tests.e2e.conftest import (
    FG,
    GEMEENTE,
    WOONGOED,
    case_body,
    exchange_body,
)

pytestmark = pytest.mark.e2e

Clients = Callable[[str], BrokerClient]
HOSTILE = '<script>alert("dpo")</script>'
SPECIAL = ("special_category", "special_category_text", "unknown_category")


# --- helpers ---------------------------------------------------------------------------


@pytest.fixture
def browser(stack: LocalStack) -> Iterator[httpx.Client]:
    """A cookie-keeping HTTP client that follows no redirects, like a careful browser test."""
    with httpx.Client(base_url=stack.broker_url, follow_redirects=False) as client:
        yield client


def log_in(browser: httpx.Client, code: str) -> httpx.Response:
    return browser.post("/dpo/session", data={"access_token": code})


def login_code(client: BrokerClient) -> str:
    """What `ketenbroker dpo login-code` prints: the token and a proof for the session."""
    token = client.token()
    proof = client.dpop_proof("POST", client.base_url + "/dpo/session", access_token=token)
    return f"{token} {proof}"


def dpo_browser(browser: httpx.Client, client_for: Clients) -> httpx.Client:
    answer = log_in(browser, login_code(client_for(FG)))
    assert answer.status_code == 303, answer.text
    return browser


def all_entries(dpo: BrokerClient) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor = -1
    while True:
        page = dpo.get("/v1/audit/entries", params={"cursor": cursor, "limit": 500}).json()
        entries.extend(page["entries"])
        if page["next_cursor"] is None:
            return entries
        cursor = page["next_cursor"]


def security_events(dpo: BrokerClient, event: str) -> list[dict[str, Any]]:
    return [
        e for e in all_entries(dpo) if e.get("kind") == "security_event" and e.get("event") == event
    ]


def assert_dpo_headers(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


def card_value(doc: Node, ident: str) -> int:
    return number(doc.by_id(ident).one("span", **{"class": "card-value"}).text())


def make_story(client_for: Clients, case_id: str) -> None:
    """Two answered exchanges (police text held back as R2), three refusals of two kinds."""
    gemeente = client_for(GEMEENTE)
    for query in ("politie.meldingen", "buurtteam.bekendheid"):
        answer = gemeente.post("/v1/exchanges", json=exchange_body(case_id, query=query))
        assert answer.status_code == 200, answer.text
    assert (
        gemeente.post("/v1/exchanges", json=exchange_body(case_id, purpose="handhaving")).json()[
            "code"
        ]
        == "purpose_mismatch"
    )
    assert (
        client_for(WOONGOED).post("/v1/exchanges", json=exchange_body(case_id)).json()["code"]
        == "not_case_partner"
    )


# --- authentication ----------------------------------------------------------------------


def test_without_a_session_the_dashboard_sends_to_the_login_and_logs_it(
    browser: httpx.Client, client_for: Clients
) -> None:
    dpo = client_for(FG)
    before = len(security_events(dpo, "GET /dpo"))
    for path in ("/dpo", "/dpo/search?q=x", "/dpo/access-report?case=case_0&subject=og-1"):
        answer = browser.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/dpo/login"
        assert_dpo_headers(answer)
    logged = security_events(dpo, "GET /dpo")
    assert len(logged) == before + 1
    assert logged[-1]["reasons"][0]["code"] == "invalid_token"
    assert logged[-1]["decision"] == "deny"
    login = browser.get("/dpo/login")
    assert login.status_code == 200
    assert parse(login.text).one("textarea", name="access_token")
    assert_dpo_headers(login)


def test_partner_token_with_audit_own_is_refused_at_login(
    browser: httpx.Client, client_for: Clients
) -> None:
    dpo = client_for(FG)
    before = len(security_events(dpo, "POST /dpo/session"))
    answer = log_in(browser, login_code(client_for(GEMEENTE)))  # scopes include audit:own
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers
    assert "audit:read" in parse(answer.text).one("p", role="alert").text()
    assert_dpo_headers(answer)
    logged = security_events(dpo, "POST /dpo/session")
    assert len(logged) == before + 1
    assert logged[-1]["reasons"][0]["code"] == "insufficient_scope"
    assert logged[-1]["requester"]["partner"] == GEMEENTE  # who tried is on record
    # Planting the partner's token as the cookie by hand gets no further.
    browser.cookies.set(SESSION_COOKIE, client_for(GEMEENTE).token(), path="/dpo")
    assert browser.get("/dpo").headers["location"] == "/dpo/login"


def test_dpo_token_sets_a_strict_short_cookie_and_opens_every_panel(
    browser: httpx.Client, client_for: Clients
) -> None:
    answer = log_in(browser, login_code(client_for(FG)))
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dpo"
    cookie = answer.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "max-age", "samesite"} <= attributes
    assert "Path=/dpo" in cookie and "SameSite=strict" in cookie
    max_age = int(re.search(r"Max-Age=(\d+)", cookie).group(1))  # type: ignore[union-attr]
    assert 0 < max_age <= 300
    page = browser.get("/dpo")
    assert page.status_code == 200, page.text
    assert_dpo_headers(page)
    doc = parse(page.text)
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
    assert doc.by_id("integrity-status").text() == "Geverifieerd"
    assert "not available" not in page.text


@pytest.mark.parametrize("kind", ["expired", "forged", "garbage"])
def test_expired_or_forged_cookie_is_refused_and_cleared(
    kind: str, stack: LocalStack, keystore: KeyStore, browser: httpx.Client, client_for: Clients
) -> None:
    now = stack.services.clock.now()
    if kind == "expired":
        # A real broker token, issued six minutes ago with a five-minute life.
        issuer = stack.services.token_issuer
        value = issuer.issue(
            principal=FG,
            role="fg",
            function=None,
            scopes=frozenset({"audit:read"}),
            now=now - timedelta(minutes=6),
        ).access_token
    elif kind == "forged":
        # The right claims, signed with the DPO's own key instead of the broker's.
        forger = AccessTokenIssuer(
            signing_key=keystore.signing_key(FG), issuer=stack.settings.issuer, ttl_seconds=300
        )
        value = forger.issue(
            principal=FG, role="fg", function=None, scopes=frozenset({"audit:read"}), now=now
        ).access_token
    else:
        value = "not-a-token"
    dpo = client_for(FG)
    before = len(security_events(dpo, "GET /dpo"))
    browser.cookies.set(SESSION_COOKIE, value, path="/dpo")
    answer = browser.get("/dpo")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dpo/login"
    assert 'ketenbroker_dpo=""' in answer.headers["set-cookie"]  # the bad cookie is dropped
    logged = security_events(dpo, "GET /dpo")
    assert len(logged) == before + 1
    assert logged[-1]["reasons"][0]["code"] == "invalid_token"
    # The same token pasted into the form fares no better.
    refused = log_in(browser, value)
    assert refused.status_code == 401
    assert "set-cookie" not in refused.headers


@pytest.mark.parametrize(("per", "bars"), [("day", 28), ("week", 24)])
def test_chart_shows_two_weeks_by_day_or_a_quarter_by_week(
    per: str, bars: int, browser: httpx.Client, client_for: Clients
) -> None:
    page = dpo_browser(browser, client_for).get("/dpo", params={"per": per})
    chart = parse(page.text).by_id("activity-chart")
    assert len([r for r in chart.find_all("rect") if "data-value" in r.attrs]) == bars


def test_unknown_chart_unit_is_an_html_refusal(browser: httpx.Client, client_for: Clients) -> None:
    answer = dpo_browser(browser, client_for).get("/dpo", params={"per": "<b>jaar</b>"})
    assert answer.status_code == 400
    assert "<b>jaar" not in answer.text
    assert_dpo_headers(answer)


def test_logout_clears_the_session(browser: httpx.Client, client_for: Clients) -> None:
    dpo_browser(browser, client_for)
    assert browser.get("/dpo").status_code == 200
    answer = browser.post("/dpo/logout")
    assert answer.status_code == 200
    assert 'ketenbroker_dpo=""' in answer.headers["set-cookie"]
    assert browser.get("/dpo").status_code == 303


def test_cli_prints_a_token_that_opens_the_dashboard(
    stack: LocalStack,
    keystore: KeyStore,
    browser: httpx.Client,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.upper().startswith("KETENBROKER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("KETENBROKER_KEYS_DIR", str(keystore.root))
    assert main(["dpo", "login-code", "--broker", stack.broker_url]) == 0
    code = capsys.readouterr().out.strip()
    assert log_in(browser, code).status_code == 303
    # A login code is good once (RFC 9449 §11.1).
    assert log_in(browser, code).status_code == 401
    assert browser.get("/dpo").status_code == 200
    assert main(["dpo", "login-url", "--broker", stack.broker_url]) == 0
    out = capsys.readouterr().out
    assert f"{stack.broker_url}/dpo/login" in out
    # A client without audit:read gets no token.
    assert main(["dpo", "token", "--broker", stack.broker_url, "--client", GEMEENTE]) == 1


# --- the panels against the log ----------------------------------------------------------


def test_panels_agree_with_the_entries_in_the_log(
    browser: httpx.Client, client_for: Clients, active_case: str
) -> None:
    make_story(client_for, active_case)
    page = dpo_browser(browser, client_for).get("/dpo")
    doc = parse(page.text)
    size = int(doc.by_id("log-size").attrs["data-value"] or -1)
    # Nothing is logged between the page and this read: valid sessions log nothing.
    entries = [e for e in all_entries(client_for(FG)) if e["index"] < size]
    assert len(entries) == size

    # Intents (logged before each fetch) are not exchanges; their disclosures are.
    exchanged = [
        e for e in entries if e["kind"] == "exchange" and e["decision"] in {"permit", "partial"}
    ]
    refused = [e for e in entries if e.get("decision") == "deny"]
    assert card_value(doc, "card-exchanged") == len(exchanged)
    assert card_value(doc, "card-refused") == len(refused)

    reasons: Counter[tuple[str, str]] = Counter()
    for e in refused:
        for code in {r["code"] for r in e["reasons"]}:
            reasons[(code, "exchange" if e["kind"] == "exchange" else "edge")] += 1
    rows = {
        row.attrs["data-reason"]: [number(td.text()) for td in row.find_all("td")[1:]]
        for row in doc.by_id("reasons-table").find_all("tr")
        if row.attrs.get("data-reason")
    }
    assert rows == {
        code: [
            reasons[code, "exchange"],
            reasons[code, "edge"],
            reasons[code, "exchange"] + reasons[code, "edge"],
        ]
        for code in {c for c, _ in reasons}
    }
    assert rows["purpose_mismatch"][0] >= 1 and rows["not_case_partner"][0] >= 1

    disclosures: Counter[tuple[str, str]] = Counter(
        (e["requester"]["partner"], e["provider"]["partner"])
        for e in exchanged
        if e["fields_disclosed"]
    )
    shown: Counter[tuple[str, str]] = Counter()
    for row in doc.by_id("disclosures-table").find_all("tr"):
        if "data-recipient" in row.attrs:
            key = (row.attrs["data-recipient"] or "", row.attrs["data-provider"] or "")
            shown[key] += number(row.one("td", data_count="exchanges").text())
    assert shown == disclosures

    blocks = Counter(
        w["code"] for e in exchanged for w in e["fields_withheld"] if w["code"] in SPECIAL
    )
    tally = {
        li.attrs["data-code"]: number(li.one("span", **{"class": "big"}).text())
        for li in doc.by_id("panel-special").find_all("li")
    }
    assert tally == {code: blocks[code] for code in SPECIAL}
    assert tally["special_category_text"] >= 1  # the police's free text about drug use

    # The chart's bars of today hold today's exchanges and refusals.
    bars = [
        int(r.attrs["data-value"] or 0)
        for r in doc.by_id("activity-chart").find_all("rect")
        if r.attrs.get("data-value") is not None
    ]
    today = entries[-1]["time"][:10]
    assert bars[-2:] == [
        sum(1 for e in exchanged if e["time"].startswith(today)),
        sum(1 for e in refused if e["time"].startswith(today)),
    ]


def test_overdue_deadlines_and_due_destructions_come_from_the_register(
    stack: LocalStack, browser: httpx.Client, client_for: Clients
) -> None:
    register, now = stack.services.cases, stack.services.clock.now()
    # Registered ten days ago and never decided on: intake and consent are overdue.
    late = register.create(
        caller=GEMEENTE,
        request=CreateCaseRequest.model_validate(case_body()),
        now=now - timedelta(days=10),
    )
    # Found not complex eight days ago: its data was due for destruction in 5 working days.
    gone = register.create(
        caller=GEMEENTE,
        request=CreateCaseRequest.model_validate(case_body(dwelling_owner="particulier")),
        now=now - timedelta(days=9),
    )
    register.transition(
        caller=GEMEENTE,
        case_id=gone.id,
        to=CaseStatus.geen_complexe_overlast,
        now=now - timedelta(days=8),
    )
    doc = parse(dpo_browser(browser, client_for).get("/dpo").text)
    overdue = {
        row.attrs["data-kind"]
        for row in doc.by_id("overdue-table").find_all("tr", data_case=late.id)
    }
    assert {"intake_decision", "corporation_consent"} <= overdue
    (destruction,) = doc.by_id("destructions-table").find_all("tr", data_case=gone.id)
    assert destruction.attrs["data-overdue"] == "true"
    assert "Geen complexe overlast" in destruction.text()


# --- search and the access report ----------------------------------------------------------


def test_search_by_case_lists_subjects_and_links_their_access_report(
    stack: LocalStack, browser: httpx.Client, client_for: Clients, active_case: str
) -> None:
    make_story(client_for, active_case)
    browser = dpo_browser(browser, client_for)
    page = browser.get("/dpo/search", params={"q": active_case})
    assert page.status_code == 200
    assert_dpo_headers(page)
    doc = parse(page.text)
    refs = {row.attrs.get("data-ref") for row in doc.by_id("subjects-table").find_all("tr")}
    refs.discard(None)
    assert refs == {"og-1", "m-1"}
    for name in ("Marco de Wit", "Fatima el Amrani", "1979-03-14"):
        assert name not in page.text  # the register's names never reach the DPO's page
    case_entries = all_entries(client_for(FG))
    expected = [e for e in case_entries if e.get("case") == active_case]
    assert number(doc.by_id("match-count").text()) == len(expected)
    link = doc.by_id("subjects-table").one("tr", data_ref="og-1").one("a")
    assert link.attrs["href"] == f"/dpo/access-report?case={active_case}&subject=og-1"

    report = browser.get(link.attrs["href"] or "")
    assert report.status_code == 200, report.text
    assert_dpo_headers(report)
    text = parse(report.text).by_id("access-report").text()
    assert "Verstrekte gegevens" in text and "Politie eenheid Rivierenland" in text
    assert "<style>" not in report.text  # the letter's inline CSS would break the CSP
    letter = browser.get(f"/dpo/access-report/letter?case={active_case}&subject=og-1")
    assert letter.status_code == 200
    assert letter.headers["content-disposition"].startswith("attachment;")
    assert "<h1>Overzicht verwerkingen persoonsgegevens" in letter.text


def test_search_by_pseudonym_finds_the_subject_and_only_that_subject(
    browser: httpx.Client, client_for: Clients, active_case: str
) -> None:
    make_story(client_for, active_case)
    entries = [e for e in all_entries(client_for(FG)) if e.get("case") == active_case]
    pseudonym = next(e["subject"] for e in entries if e.get("subject"))
    doc = parse(dpo_browser(browser, client_for).get("/dpo/search", params={"q": pseudonym}).text)
    (row,) = [r for r in doc.by_id("subjects-table").find_all("tr") if "data-ref" in r.attrs]
    assert row.attrs["data-ref"] == "og-1"
    assert pseudonym in row.text()
    assert number(doc.by_id("match-count").text()) == sum(
        1 for e in all_entries(client_for(FG)) if e.get("subject") == pseudonym
    )


def test_unknown_case_has_no_access_report(browser: httpx.Client, client_for: Clients) -> None:
    answer = dpo_browser(browser, client_for).get(
        "/dpo/access-report", params={"case": "case_" + "0" * 32, "subject": "og-1"}
    )
    assert answer.status_code == 404
    assert "Geen inzageoverzicht" in answer.text
    assert_dpo_headers(answer)


# --- hostile input -----------------------------------------------------------------------------


def test_hostile_strings_in_the_log_and_the_query_are_shown_escaped(
    stack: LocalStack, browser: httpx.Client, client_for: Clients
) -> None:
    attempt = httpx.post(
        stack.broker_url + "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": HOSTILE,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": "a.b.c",
        },
    )
    assert attempt.status_code == 401
    browser = dpo_browser(browser, client_for)
    overview = browser.get("/dpo")
    assert HOSTILE not in overview.text
    assert "&lt;script&gt;alert(&quot;dpo&quot;)&lt;/script&gt;" in overview.text
    assert HOSTILE in parse(overview.text).by_id("refusals-table").text()
    search = browser.get("/dpo/search", params={"q": HOSTILE})
    assert search.status_code == 200
    assert HOSTILE not in search.text
    assert parse(search.text).by_id("query").text() == HOSTILE


def test_oversized_search_is_refused_logged_and_rendered_as_a_page(
    browser: httpx.Client, client_for: Clients
) -> None:
    browser = dpo_browser(browser, client_for)
    dpo = client_for(FG)
    before = len(security_events(dpo, "GET /dpo/search"))
    answer = browser.get("/dpo/search", params={"q": "x" * 1000})
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")
    assert_dpo_headers(answer)
    logged = security_events(dpo, "GET /dpo/search")
    assert len(logged) == before + 1
    assert logged[-1]["reasons"][0]["code"] == "invalid_request"
    assert "x" * 50 not in str(logged[-1])  # the submitted value is not in the log


def test_static_files_come_from_the_broker(browser: httpx.Client) -> None:
    css = browser.get("/dpo/static/dpo.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    icon = browser.get("/dpo/static/favicon.svg")
    assert icon.headers["content-type"].startswith("image/svg+xml")
    login = parse(browser.get("/dpo/login").text)
    sources = [n.attrs.get("href") or n.attrs.get("src") for n in login.find_all()]
    assert all(s is None or s.startswith("/") for s in sources)  # nothing from elsewhere
    assert not login.find_all("script")
