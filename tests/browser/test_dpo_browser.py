"""The DPO's dashboard as a person sees it, in a real headless Chromium.

The story: partners exchange (one answer has special-category text held
back), some requests are refused, an attacker tries a client id with
markup in it. The DPO then logs in through the login form with a real
token from the token endpoint, and the page must show what the log holds:
the size of the signed checkpoint, "Geverifieerd", a drawn chart, the
refusal reasons; the attacker's text must show as text. Screenshots are
taken and checked to be real pictures.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page

from adapters.sdk.client import BrokerClient
from broker.cases.model import CaseStatus
from broker.cases.requests import CreateCaseRequest
from broker.keys import KeyStore
from broker.stack import LocalStack
from tests.e2e.conftest import (
    DE_LINGE,
    FG,
    GEMEENTE,
    WOONGOED,
    case_body,
    exchange_body,
)

pytestmark = pytest.mark.e2e

HOSTILE_CLIENT = '<script>document.title="pwned"</script>'
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_SCREENSHOT_BYTES = 20_000  # a blank or broken page compresses to a few kilobytes


@pytest.fixture(scope="module")
def client_for(
    browser_stack: LocalStack, keystore: KeyStore
) -> Iterator[Callable[[str], BrokerClient]]:
    clients: dict[str, BrokerClient] = {}

    def make(principal: str) -> BrokerClient:
        if principal not in clients:
            clients[principal] = BrokerClient(
                base_url=browser_stack.broker_url,
                client_id=principal,
                signing_key=keystore.signing_key(principal),
            )
        return clients[principal]

    yield make
    for client in clients.values():
        client.close()


@pytest.fixture(scope="module")
def story(browser_stack: LocalStack, client_for: Callable[[str], BrokerClient]) -> str:
    """Exchanges, refusals and a hostile attempt in the log; returns the case id."""
    gemeente = client_for(GEMEENTE)
    created = gemeente.post("/v1/cases", json=case_body())
    assert created.status_code == 201, created.text
    case_id: str = created.json()["id"]
    assert (
        client_for(DE_LINGE)
        .post(f"/v1/cases/{case_id}/consent", json={"decision": "granted"})
        .status_code
        == 200
    )
    moved = gemeente.post(f"/v1/cases/{case_id}/transitions", json={"to": "in_behandeling"})
    assert moved.status_code == 200, moved.text
    for query in ("politie.meldingen", "buurtteam.bekendheid", "politie.meldingen"):
        answer = gemeente.post("/v1/exchanges", json=exchange_body(case_id, query=query))
        assert answer.status_code == 200, answer.text
    wrong_purpose = gemeente.post(
        "/v1/exchanges", json=exchange_body(case_id, purpose="handhaving")
    )
    assert wrong_purpose.json()["code"] == "purpose_mismatch"
    outsider = client_for(WOONGOED).post("/v1/exchanges", json=exchange_body(case_id))
    assert outsider.json()["code"] == "not_case_partner"
    attempt = httpx.post(
        browser_stack.broker_url + "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": HOSTILE_CLIENT,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": "a.b.c",
        },
    )
    assert attempt.status_code == 401
    # The register's side: a case left undecided for ten days (its intake and
    # consent terms overdue) and one found not complex a week ago (due for
    # destruction), registered with a past `now` as the register allows.
    register, now = browser_stack.services.cases, browser_stack.services.clock.now()
    register.create(
        caller=GEMEENTE,
        request=CreateCaseRequest.model_validate(case_body()),
        now=now - timedelta(days=10),
    )
    gone = register.create(
        caller=GEMEENTE,
        request=CreateCaseRequest.model_validate(case_body(dwelling_owner="particulier")),
        now=now - timedelta(days=9),
    )
    register.transition(
        caller=GEMEENTE,
        case_id=gone.id,
        to=CaseStatus.geen_complexe_overlast,
        now=now - timedelta(days=7),
    )
    return case_id


@pytest.fixture
def page(chromium: BrowserContext) -> Iterator[Page]:
    chromium.clear_cookies()  # every test starts logged out
    page = chromium.new_page()
    problems: list[str] = []
    # A CSP violation or a failed resource shows up as a console error.
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    yield page
    page.close()
    assert problems == [], f"the browser reported errors: {problems}"


def log_in(page: Page, stack: LocalStack, token: str) -> None:
    page.goto(stack.broker_url + "/dpo")
    # No session yet: the dashboard sends the browser to the login form.
    assert page.url == stack.broker_url + "/dpo/login"
    page.fill("#access_token", token)
    page.click("form[action='/dpo/session'] button[type=submit]")
    page.wait_for_url(stack.broker_url + "/dpo")


def login_code(client: BrokerClient) -> str:
    """What `ketenbroker dpo login-code` prints: the token and a proof for the session."""
    token = client.token()
    proof = client.dpop_proof("POST", client.base_url + "/dpo/session", access_token=token)
    return f"{token} {proof}"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    return width, height


def test_dpo_logs_in_and_reads_the_verified_dashboard(
    page: Page,
    browser_stack: LocalStack,
    client_for: Callable[[str], BrokerClient],
    story: str,
    tmp_path: Path,
) -> None:
    dpo = client_for(FG)
    log_in(page, browser_stack, login_code(dpo))

    checkpoint = dpo.get("/v1/audit/checkpoint").json()
    shot = tmp_path / "dpo-dashboard.png"
    page.screenshot(path=str(shot), full_page=True)

    # The log's size is the signed checkpoint's, and the root is verified.
    assert page.get_attribute("#log-size", "data-value") == str(checkpoint["size"])
    assert page.inner_text("#root-hash") == checkpoint["root_hash"]
    assert page.inner_text("#integrity-status").strip() == "Geverifieerd"
    assert page.is_visible("#integrity-status")

    # The chart is drawn: an SVG of real size with bars of real height.
    chart = page.locator("#activity-chart")
    assert chart.is_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 600 and box["height"] > 150
    heights = [
        float(h or 0)
        for h in chart.locator("rect.bar").evaluate_all(
            "bars => bars.map(b => b.getAttribute('height'))"
        )
    ]
    assert len(heights) == 28 and max(heights) > 0  # 14 days, two bars a day

    # Refusal reasons are listed, in Dutch, with their codes.
    reasons = page.inner_text("#reasons-table")
    for text in ("Doel past niet bij het convenant", "purpose_mismatch", "not_case_partner"):
        assert text in reasons
    assert "invalid_client" in reasons

    # The special-category block from the police answer is counted.
    special = page.inner_text("#panel-special")
    assert "special_category_text" in special

    # The register's panels: overdue terms and a destruction past its day.
    assert "Besluit na intake" in page.inner_text("#overdue-table")
    assert "te laat" in page.inner_text("#destructions-table")

    # The attacker's client id is shown as text, and ran nowhere.
    assert HOSTILE_CLIENT in page.inner_text("#refusals-table")
    assert page.title() != "pwned"

    # The style sheet came from the broker and was applied under the CSP.
    header_colour = page.eval_on_selector(
        "header.top", "el => getComputedStyle(el).backgroundColor"
    )
    assert header_colour == "rgb(18, 60, 90)"

    assert shot.stat().st_size > MIN_SCREENSHOT_BYTES
    width, height = png_size(shot)
    assert width >= 1400 and height > 1000


def test_dpo_searches_a_case_and_opens_the_access_report(
    page: Page,
    browser_stack: LocalStack,
    client_for: Callable[[str], BrokerClient],
    story: str,
    tmp_path: Path,
) -> None:
    log_in(page, browser_stack, login_code(client_for(FG)))
    page.fill("#q", story)
    page.click("form.search button[type=submit]")
    page.wait_for_url("**/dpo/search?q=*")
    shot = tmp_path / "dpo-search.png"
    page.screenshot(path=str(shot), full_page=True)

    subjects = page.inner_text("#subjects-table")
    assert "og-1" in subjects and "m-1" in subjects
    assert "Marco de Wit" not in page.content()  # names never reach the DPO's page
    assert int(page.inner_text("#match-count")) >= 5
    assert shot.stat().st_size > MIN_SCREENSHOT_BYTES

    page.click("tr[data-ref='og-1'] a")
    page.wait_for_url("**/dpo/access-report?*")
    report_shot = tmp_path / "dpo-access-report.png"
    page.screenshot(path=str(report_shot), full_page=True)
    report = page.inner_text("#access-report")
    assert "Verstrekte gegevens" in report
    assert "Politie" in report  # the police gave fields about og-1
    assert "Marco de Wit" not in page.content()
    assert report_shot.stat().st_size > MIN_SCREENSHOT_BYTES


APPEND_ONLY_TRIGGER = (  # as broker/audit/sqlite_store.py creates it
    "CREATE TRIGGER IF NOT EXISTS audit_entries_no_update BEFORE UPDATE ON audit_entries"
    " BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END"
)


def test_a_rewritten_entry_shows_as_not_verified(
    page: Page,
    browser_stack: LocalStack,
    client_for: Callable[[str], BrokerClient],
    story: str,
    tmp_path: Path,
) -> None:
    # Someone with write access to the database turns a refusal into a permission.
    path = browser_stack.settings.sqlite_path
    with closing(sqlite3.connect(path)) as db, db:
        index, original = db.execute(
            """SELECT "index", entry FROM audit_entries WHERE decision = 'deny'"""
            """ AND kind = 'exchange' ORDER BY "index" LIMIT 1"""
        ).fetchone()
        db.execute("DROP TRIGGER audit_entries_no_update")
        db.execute(
            'UPDATE audit_entries SET entry = ? WHERE "index" = ?',
            (original.replace('"decision":"deny"', '"decision":"permit"'), index),
        )
    try:
        log_in(page, browser_stack, login_code(client_for(FG)))
        shot = tmp_path / "dpo-not-verified.png"
        page.screenshot(path=str(shot), full_page=True)
        assert page.inner_text("#integrity-status").strip() == "Niet geverifieerd"
        assert f"leaf hash of entry {index}" in page.inner_text("#integrity-problems")
        assert shot.stat().st_size > MIN_SCREENSHOT_BYTES
    finally:
        with closing(sqlite3.connect(path)) as db, db:
            db.execute('UPDATE audit_entries SET entry = ? WHERE "index" = ?', (original, index))
            db.execute(APPEND_ONLY_TRIGGER)
