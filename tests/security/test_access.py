"""Authenticated partners reaching for what is not theirs.

Broken object-level authorisation (a case of someone else), enumeration of
case ids, functions of another role (the regisseur's, the DPO's), scopes a
token does not carry or a role may not have, the wrong purpose, fields a
corporation may never see, a spoofed `on_behalf_of`, another partner's
audit entries, and request fields that try to set what only the broker
decides (mass assignment). Every refusal: 4xx, nothing disclosed, logged.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest

from broker.stack import LocalStack
from tests.security.conftest import (
    BUURTTEAM,
    DE_LINGE,
    FG,
    GEMEENTE,
    GGD,
    POLITIE,
    WOONGOED,
    Attempt,
    Clients,
    StackForge,
    assert_refused,
    attempt,
    case_body,
    exchange_body,
    register_case,
    request_token,
)

pytestmark = pytest.mark.e2e

ABSENT_CASE = "case_" + "0" * 32


def call(
    stack: LocalStack,
    client_for: Clients,
    principal: str,
    method: str,
    path: str,
    *,
    scopes: str | None = None,
    **kw: Any,
) -> Attempt:
    client = client_for(principal, scopes) if scopes else client_for(principal)
    return attempt(stack, lambda trace: client.request(method, path, headers=trace, **kw))


def same_answer(first: httpx.Response, second: httpx.Response) -> None:
    """Indistinguishable to the caller: status, media type, header names, body (less receipts)."""
    assert first.status_code == second.status_code
    assert first.headers.get("content-type") == second.headers.get("content-type")
    varying = {"date", "content-length", "dpop-nonce"}
    assert {h for h in first.headers if h not in varying} == {
        h for h in second.headers if h not in varying
    }
    one, other = first.json(), second.json()
    # Each refusal has its own log entry, hence its own receipt; nothing else may differ.
    one.pop("receipt", None)
    other.pop("receipt", None)
    assert one == other


# --- BOLA: another partner's case ---------------------------------------------------------

CASE_OPERATIONS = [
    pytest.param("GET", "/v1/cases/{case}", None, id="read"),
    pytest.param("GET", "/v1/cases/{case}/status", None, id="status"),
    pytest.param("POST", "/v1/cases/{case}/partners", {"partner": WOONGOED}, id="admit-self"),
    pytest.param("POST", "/v1/cases/{case}/consent", {"decision": "granted"}, id="consent"),
    pytest.param("POST", "/v1/cases/{case}/transitions", {"to": "afgesloten"}, id="transition"),
    pytest.param("POST", "/v1/cases/{case}/events", {"event": "om_toestemming"}, id="event"),
    pytest.param(
        "POST",
        "/v1/cases/{case}/urgency",
        {"justification": "Acuut gevaar voor de omwonenden, direct ingrijpen nodig."},
        id="urgency",
    ),
]


@pytest.mark.parametrize(("method", "path", "body"), CASE_OPERATIONS)
def test_reading_another_case_answers_like_an_absent_one(
    stack: LocalStack,
    client_for: Clients,
    active_case: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    """A corporation outside the case learns nothing, not even that the case exists."""
    kw = {"json": body} if body is not None else {}
    foreign = call(stack, client_for, WOONGOED, method, path.format(case=active_case), **kw)
    absent = call(stack, client_for, WOONGOED, method, path.format(case=ABSENT_CASE), **kw)
    for result in (foreign, absent):
        assert_refused(result.response, status=404, also=(active_case,))
        result.assert_logged(result.response.json()["code"], principal=WOONGOED)
    same_answer(foreign.response, absent.response)


def test_exchange_about_another_case_answers_like_an_absent_one(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    foreign = call(
        stack, client_for, WOONGOED, "POST", "/v1/exchanges", json=exchange_body(active_case)
    )
    absent = call(
        stack, client_for, WOONGOED, "POST", "/v1/exchanges", json=exchange_body(ABSENT_CASE)
    )
    for result in (foreign, absent):
        assert_refused(result.response, status=404, code="not_case_partner")
        result.assert_logged("not_case_partner", principal=WOONGOED)
    same_answer(foreign.response, absent.response)


def test_case_id_enumeration_gets_one_uniform_answer(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    """Guesses near a real id, wildcards and the real id itself: all the same 404."""
    last = active_case[-1]
    probes = [
        active_case,  # the real one, of somebody else
        ABSENT_CASE,
        "case_" + "f" * 32,
        active_case[:-1] + ("0" if last != "0" else "1"),  # one character off
        active_case.upper(),  # case-insensitive lookup would find it
        active_case[:20],  # a prefix: LIKE 'prefix%' would find it
        active_case + "0",  # one character more
        "case_%",  # an SQL wildcard
        "*",
        "1",
    ]
    answers = []
    for probe in probes:
        result = call(stack, client_for, WOONGOED, "GET", f"/v1/cases/{probe}")
        if result.response.status_code == 429:
            continue  # a rate limit on probing is a fine answer too (issue 5, point 6)
        assert_refused(result.response, status=404, code="not_found", also=(active_case,))
        result.assert_logged("not_found", kind="security_event", principal=WOONGOED)
        answers.append(result.response)
    assert len(answers) >= 2
    for answer in answers[1:]:
        same_answer(answers[0], answer)


# --- functions of another role -------------------------------------------------------------

REGISSEUR_ONLY = [
    pytest.param("POST", "/v1/cases", "new", id="register-a-case"),
    pytest.param("POST", "/v1/cases/{case}/partners", {"partner": WOONGOED}, id="admit-a-partner"),
    pytest.param("POST", "/v1/cases/{case}/transitions", {"to": "casusoverleg"}, id="transition"),
    pytest.param(
        "POST",
        "/v1/cases/{case}/urgency",
        {"justification": "Acuut gevaar voor de omwonenden, direct ingrijpen nodig."},
        id="declare-urgency",
    ),
]


@pytest.mark.parametrize(("method", "path", "body"), REGISSEUR_ONLY)
def test_partner_calling_regisseur_functions_is_refused(
    stack: LocalStack,
    client_for: Clients,
    active_case: str,
    method: str,
    path: str,
    body: object,
) -> None:
    """The police take part in the case and hold cases:write, but direct nothing."""
    payload = case_body() if body == "new" else body
    result = call(stack, client_for, POLITIE, method, path.format(case=active_case), json=payload)
    assert_refused(result.response, status=403, code="not_regisseur")
    result.assert_logged("not_regisseur", kind="security_event", principal=POLITIE)


DPO_ONLY = [
    pytest.param("/v1/audit/export", {}, id="export"),
    pytest.param("/v1/audit/verification", {}, id="verification"),
    pytest.param("/v1/audit/subjects/og-1", {"case": "{case}"}, id="access-report"),
    pytest.param("/v1/audit/decisions", {"exchange": "ex_" + "a" * 32}, id="decision-log"),
]


@pytest.mark.parametrize(("path", "params"), DPO_ONLY)
@pytest.mark.parametrize("principal", [GEMEENTE, POLITIE])
def test_partner_calling_dpo_functions_is_refused(
    stack: LocalStack,
    client_for: Clients,
    active_case: str,
    principal: str,
    path: str,
    params: dict[str, str],
) -> None:
    query = {name: value.format(case=active_case) for name, value in params.items()}
    result = call(stack, client_for, principal, "GET", path, params=query)
    assert_refused(result.response, status=403, code="insufficient_scope")
    result.assert_logged("insufficient_scope", kind="security_event", principal=principal)


@pytest.mark.parametrize("form", ["token", "login-code"])
def test_partner_credentials_open_no_dpo_dashboard(
    stack: LocalStack, client_for: Clients, form: str
) -> None:
    """The gemeente's own valid token, or a login code made with it, at the DPO's login."""
    client = client_for(GEMEENTE)
    token = client.token()
    url = stack.settings.issuer + "/dpo/session"
    credential = token
    if form == "login-code":
        credential = f"{token} {client.dpop_proof('POST', url, access_token=token)}"
    result = attempt(
        stack,
        lambda trace: httpx.post(
            url, data={"access_token": credential, "login_code": credential}, headers=trace
        ),
    )
    response = result.response
    assert_refused(response, status={400, 401, 403}, problem=False, also=(token,))
    for cookie in response.headers.get_list("set-cookie"):
        name, _, rest = cookie.partition("=")
        value = rest.split(";", 1)[0].strip('"')
        assert name.strip() != "ketenbroker_dpo" or not value, f"a session was opened: {cookie}"
    codes = result.codes()
    assert codes & {"insufficient_scope", "invalid_token", "invalid_request"}, result.records


# --- scopes -------------------------------------------------------------------------------

SCOPE_MISUSE = [
    # A gemeente token narrowed to reading cases, used for an exchange.
    pytest.param(
        GEMEENTE, "cases:read", "POST", "/v1/exchanges", "exchange", id="read-to-exchange"
    ),
    # A gemeente token for exchanges only, used to register a case.
    pytest.param(GEMEENTE, "exchange", "POST", "/v1/cases", "new", id="exchange-to-register"),
    # The police with audit:own only, reading a case.
    pytest.param(POLITIE, "audit:own", "GET", "/v1/cases/{case}", None, id="audit-to-case"),
    # A care partner (no cases:write in the convenant) moving a case.
    pytest.param(
        GGD, None, "POST", "/v1/cases/{case}/transitions", {"to": "afgesloten"}, id="care-write"
    ),
    # The DPO (audit:read only) asking for an exchange.
    pytest.param(FG, None, "POST", "/v1/exchanges", "exchange", id="dpo-exchange"),
    # The DPO registering a case.
    pytest.param(FG, None, "POST", "/v1/cases", "new", id="dpo-register"),
]


@pytest.mark.parametrize(("principal", "scopes", "method", "path", "body"), SCOPE_MISUSE)
def test_scope_misuse_is_refused(
    stack: LocalStack,
    client_for: Clients,
    active_case: str,
    principal: str,
    scopes: str | None,
    method: str,
    path: str,
    body: object,
) -> None:
    payload = {"new": case_body(), "exchange": exchange_body(active_case)}.get(str(body), body)
    kw = {"json": payload} if payload is not None else {}
    result = call(
        stack, client_for, principal, method, path.format(case=active_case), scopes=scopes, **kw
    )
    assert_refused(result.response, status=403, code="insufficient_scope")
    assert "insufficient_scope" in result.response.headers["www-authenticate"]
    result.assert_logged("insufficient_scope", kind="security_event", principal=principal)


@pytest.mark.parametrize(
    ("principal", "scope"),
    [
        (BUURTTEAM, "cases:write"),  # care partners never write to the register
        (DE_LINGE, "audit:read"),  # a corporation asking for the DPO's view
        (FG, "exchange"),  # the DPO asking for data
        (GEMEENTE, "admin"),  # a scope that does not exist
        (GEMEENTE, "exchange audit:read"),  # one allowed, one not: all refused
        (GEMEENTE, "EXCHANGE"),  # scopes are case-sensitive (RFC 6749 §3.3)
    ],
)
def test_scope_beyond_the_role_is_never_granted(
    stack: LocalStack, forge: StackForge, principal: str, scope: str
) -> None:
    result = request_token(stack, principal, forge.assertion(client_id=principal), scope=scope)
    assert_refused(result.response, status=400, code="invalid_scope", problem=False)
    assert "access_token" not in result.response.text
    result.assert_logged("invalid_scope", kind="security_event", principal=principal)


# --- exchanges the convenant does not allow ------------------------------------------------


@pytest.mark.parametrize(
    "purpose",
    [
        "opsporing",  # investigation: the police's purpose, not the convenant's
        "handhaving",  # enforcement
        "aanpak_woonoverlast_extra",  # a look-alike of the real purpose
        "input",  # a Rego keyword as a purpose
    ],
)
def test_wrong_purpose_is_refused(
    stack: LocalStack, client_for: Clients, active_case: str, purpose: str
) -> None:
    body = exchange_body(active_case, purpose=purpose)
    result = call(stack, client_for, GEMEENTE, "POST", "/v1/exchanges", json=body)
    assert_refused(result.response, status=403, code="purpose_mismatch")
    result.assert_logged("purpose_mismatch", principal=GEMEENTE)


@pytest.mark.parametrize("query", ["politie.meldingen", "buurtteam.bekendheid", "ggd.bekendheid"])
def test_corporation_asking_for_police_or_care_fields_is_refused(
    stack: LocalStack, client_for: Clients, active_case: str, query: str
) -> None:
    """The owning corporation takes part in the case, and still gets no police or care data."""
    body = exchange_body(active_case, query=query)
    result = call(stack, client_for, DE_LINGE, "POST", "/v1/exchanges", json=body)
    assert_refused(result.response, status=403, code="exchange_not_allowed")
    result.assert_logged("exchange_not_allowed", principal=DE_LINGE)


@pytest.mark.parametrize(
    ("principal", "query", "status", "code"),
    [
        # A care partner claiming to act for the casemanager, asking the police.
        (BUURTTEAM, "politie.meldingen", 403, "exchange_not_allowed"),
        # The police claiming the same, asking the buurtteam.
        (POLITIE, "buurtteam.bekendheid", 403, "exchange_not_allowed"),
        # A corporation outside the case claiming it.
        (WOONGOED, "politie.meldingen", 404, "not_case_partner"),
    ],
)
def test_spoofed_on_behalf_of_grants_nothing(
    stack: LocalStack,
    client_for: Clients,
    active_case: str,
    principal: str,
    query: str,
    status: int,
    code: str,
) -> None:
    """`on_behalf_of` is the partner's own claim; the token decides who asks."""
    impersonated = {"user": "j.devries", "function": "casusregisseur"}
    body = exchange_body(active_case, query=query, on_behalf_of=impersonated)
    result = call(stack, client_for, principal, "POST", "/v1/exchanges", json=body)
    assert_refused(result.response, status=status, code=code)
    record = result.assert_logged(code, principal=principal)
    # The log names the authenticated partner, whoever it claimed to act for.
    assert record["requester"]["partner"] == principal


@pytest.mark.parametrize(
    "on_behalf_of",
    [
        {"user": "j.devries", "function": "casusregisseur", "partner": GEMEENTE},
        {"user": "j.devries", "function": "casusregisseur", "role": "gemeente"},
        {"user": "j.devries", "function": "casusregisseur", "regisseur": True},
    ],
    ids=["partner", "role", "regisseur"],
)
def test_on_behalf_of_cannot_name_another_partner(
    stack: LocalStack, client_for: Clients, active_case: str, on_behalf_of: dict[str, Any]
) -> None:
    body = exchange_body(active_case, on_behalf_of=on_behalf_of)
    result = call(stack, client_for, BUURTTEAM, "POST", "/v1/exchanges", json=body)
    assert_refused(result.response, status=400, code="invalid_request")
    result.assert_logged("invalid_request", kind="security_event", principal=BUURTTEAM)


# --- the audit log of others -----------------------------------------------------------------


@pytest.fixture
def police_exchange(client_for: Clients, active_case: str) -> dict[str, Any]:
    """The gemeente asked the police about the case: an entry of theirs, not the corporation's."""
    answer = client_for(GEMEENTE).post("/v1/exchanges", json=exchange_body(active_case))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.mark.parametrize("target", [GEMEENTE, POLITIE, FG])
def test_reading_another_partners_audit_entries_is_refused(
    stack: LocalStack, client_for: Clients, police_exchange: dict[str, Any], target: str
) -> None:
    result = call(
        stack, client_for, DE_LINGE, "GET", "/v1/audit/entries", params={"partner": target}
    )
    assert_refused(result.response, status=400, code="invalid_request")
    result.assert_logged("invalid_request", kind="security_event", principal=DE_LINGE)


def test_own_audit_view_holds_only_own_entries(
    client_for: Clients, active_case: str, police_exchange: dict[str, Any]
) -> None:
    """Without a partner filter, a partner's view is narrowed to itself, case filter or not."""
    corporation = client_for(DE_LINGE)
    for params in ({}, {"case": active_case}, {"decision": "permit"}, {"decision": "partial"}):
        answer = corporation.get("/v1/audit/entries", params={**params, "limit": "500"})
        assert answer.status_code == 200, answer.text
        for entry in answer.json()["entries"]:
            involved = {entry["requester"].get("partner"), entry.get("provider", {}).get("partner")}
            assert DE_LINGE in involved, f"the corporation sees someone else's entry: {entry}"
        assert police_exchange["exchange"] not in answer.text


def test_holding_another_partners_entry_answers_like_an_absent_one(
    stack: LocalStack, client_for: Clients, police_exchange: dict[str, Any]
) -> None:
    """Only the provider may hold its entry; others cannot even learn the index exists."""
    index = police_exchange["receipt"]["log_index"]
    reason = {"reason": "lopend onderzoek"}
    theirs = call(
        stack, client_for, DE_LINGE, "POST", f"/v1/audit/entries/{index}/hold", json=reason
    )
    absent = call(
        stack, client_for, DE_LINGE, "POST", f"/v1/audit/entries/{2**40}/hold", json=reason
    )
    for result in (theirs, absent):
        assert_refused(result.response, status=404, code="not_found")
        result.assert_logged("not_found", kind="security_event", principal=DE_LINGE)
    same_answer(theirs.response, absent.response)
    # The requester of the exchange is no provider either.
    requester = call(
        stack, client_for, GEMEENTE, "POST", f"/v1/audit/entries/{index}/hold", json=reason
    )
    assert_refused(requester.response, status=404, code="not_found")


# --- mass assignment ---------------------------------------------------------------------

CASE_EXTRAS = [
    pytest.param({"status": "afgesloten"}, id="status"),
    pytest.param({"id": "case_" + "1" * 32}, id="id"),
    pytest.param({"regisseur": POLITIE}, id="regisseur"),
    pytest.param({"consent": "granted"}, id="consent"),
    pytest.param({"owner": POLITIE}, id="owner"),
    pytest.param({"personal_data_destroyed": True}, id="destroyed"),
    pytest.param({"urgent": True}, id="urgent"),
    pytest.param({"created_at": "2020-01-01T00:00:00Z"}, id="created-at"),
]


@pytest.mark.parametrize("extra", CASE_EXTRAS)
def test_mass_assignment_of_case_status_or_owner_is_refused(
    stack: LocalStack, client_for: Clients, extra: dict[str, Any]
) -> None:
    body = {**case_body(), **extra}
    result = call(stack, client_for, GEMEENTE, "POST", "/v1/cases", json=body)
    assert_refused(result.response, status=400, code="invalid_request")
    result.assert_logged("invalid_request", kind="security_event", principal=GEMEENTE)


NESTED_EXTRAS = [
    # A second regisseur smuggled into the transition.
    pytest.param(GEMEENTE, "transitions", {"to": "casusoverleg", "regisseur": POLITIE}, id="t-reg"),
    # A transition that also claims consent was given.
    pytest.param(GEMEENTE, "transitions", {"to": "casusoverleg", "consent": "granted"}, id="t-con"),
    # Consent by the owner that names itself a partner with status actief.
    pytest.param(DE_LINGE, "consent", {"decision": "granted", "status": "actief"}, id="c-status"),
    # Admitting a partner and setting its status at once.
    pytest.param(GEMEENTE, "partners", {"partner": WOONGOED, "status": "actief"}, id="p-status"),
    # A subject's role upgraded through an extra member.
    pytest.param(GEMEENTE, "partners", {"partner": WOONGOED, "role": "politie"}, id="p-role"),
]


@pytest.mark.parametrize(("principal", "action", "body"), NESTED_EXTRAS)
def test_mass_assignment_in_case_actions_is_refused(
    stack: LocalStack,
    client_for: Clients,
    active_case: str,
    principal: str,
    action: str,
    body: dict[str, Any],
) -> None:
    path = f"/v1/cases/{active_case}/{action}"
    result = call(stack, client_for, principal, "POST", path, json=body)
    assert_refused(result.response, status=400, code="invalid_request")
    result.assert_logged("invalid_request", kind="security_event", principal=principal)


EXCHANGE_EXTRAS = [
    pytest.param({"requester": {"partner": GEMEENTE}}, id="requester"),
    pytest.param({"decision": "permit"}, id="decision"),
    pytest.param({"provider": POLITIE}, id="provider"),
    pytest.param({"fields": ["strafrechtelijke_antecedenten"]}, id="fields"),
    pytest.param({"legal_basis": {"law": "Wet politiegegevens"}}, id="legal-basis"),
    pytest.param({"subject_pseudonym": "ps_" + "0" * 32}, id="pseudonym"),
]


@pytest.mark.parametrize("extra", EXCHANGE_EXTRAS)
def test_mass_assignment_in_an_exchange_is_refused(
    stack: LocalStack, client_for: Clients, active_case: str, extra: dict[str, Any]
) -> None:
    body = {**exchange_body(active_case), **extra}
    result = call(stack, client_for, BUURTTEAM, "POST", "/v1/exchanges", json=body)
    assert_refused(result.response, status=400, code="invalid_request")
    result.assert_logged("invalid_request", kind="security_event", principal=BUURTTEAM)


def test_consent_by_a_corporation_that_does_not_own_the_dwelling_is_refused(
    stack: LocalStack, client_for: Clients
) -> None:
    case_id = register_case(client_for, partners=[POLITIE, WOONGOED])
    # Woongoed takes part in the case but does not own the dwelling: its consent is no consent.
    result = call(
        stack,
        client_for,
        WOONGOED,
        "POST",
        f"/v1/cases/{case_id}/consent",
        json={"decision": "granted"},
    )
    assert_refused(result.response, status={403, 404, 409})
    result.assert_logged(result.response.json()["code"], principal=WOONGOED)
    answer = client_for(GEMEENTE).get(f"/v1/cases/{case_id}")
    assert answer.json()["consent"] == "pending"


def test_random_subject_ref_in_own_case_is_refused(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    """Probing for subjects by ref inside one's own case."""
    body = exchange_body(active_case, subject="s-" + secrets.token_hex(4))
    result = call(stack, client_for, GEMEENTE, "POST", "/v1/exchanges", json=body)
    assert_refused(result.response, status=403, code="subject_not_in_case")
    result.assert_logged("subject_not_in_case", principal=GEMEENTE)
