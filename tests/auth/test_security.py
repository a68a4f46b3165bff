"""Access tokens on API calls (broker.api.security), over HTTP.

Probe routes guarded by the real dependencies stand in for the API; each
refusal must be a 401/403 problem document with its challenge (RFC 9449
§7.1, DPoP being the example convenant's only scheme), and exactly one
security_event in the audit log. Calls carry DPoP-bound tokens and proofs
as a partner's client sends them; tests/auth/test_dpop.py covers the
proofs' defects and the bearer tokens a convenant may allow.
"""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest

from broker.api.security import require_any_scope, require_scope
from broker.keys import generate_signing_key
from tests.auth.conftest import AuthServices, DpopCaller, TestClient, security_events
from tests.auth.forgeries import OTHER_PARTNER, VICTIM, Forge
from tests.auth.helpers import JWT_BEARER, SteppingClock

# RFC 9449 §7.1: the challenge names the scheme and the proof algorithms.
ALGS = 'algs="EdDSA ES256"'
MISSING = f"DPoP {ALGS}"
INVALID = f'DPoP error="invalid_token", {ALGS}'


def token_for(
    services: AuthServices,
    principal: str = VICTIM,
    scopes: frozenset[str] | None = None,
    *,
    jkt: str | None = None,
) -> str:
    """A token as the endpoint issues it; bound to `jkt` (the test's DPoP key by default)."""
    convenant = services.convenant
    partner = convenant.partner(principal)
    return services.token_issuer.issue(
        principal=principal,
        role=convenant.role_of(principal) or "gemeente",
        function=partner.function if partner else None,
        scopes=scopes if scopes is not None else convenant.scopes_for(principal),
        now=services.clock.now(),
        jkt=jkt,
    ).access_token


def assert_refused(
    response: httpx.Response,
    services: AuthServices,
    *,
    status: int,
    code: str,
    challenge: str,
    principal: str | None,
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == challenge
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert set(body) == {"type", "title", "status", "detail", "code"}
    events = security_events(services)
    assert len(events) == 1, events
    (event,) = events
    assert event["reasons"][0]["code"] == code
    assert event["requester"] == {"partner": principal}
    assert event["event"].startswith("GET /probe/")
    return event


# --- admitted ------------------------------------------------------------------


def test_token_with_the_scope_yields_the_caller(
    client: TestClient, services: AuthServices, dpop: DpopCaller
) -> None:
    token = token_for(services, "buurtteam-lekstroom", jkt=dpop.key.jkt)
    response = client.get("/probe/exchange", headers=dpop.headers(token, "/probe/exchange"))
    assert response.status_code == 200, response.text
    caller = response.json()
    assert caller["principal"] == "buurtteam-lekstroom"
    assert caller["role"] == "zorg"
    assert caller["function"] == "buurtteam"
    assert caller["scopes"] == ["audit:own", "cases:read", "exchange"]
    assert caller["token_jti"]
    assert security_events(services) == []


@pytest.mark.parametrize(
    "scheme",
    [
        "dpop",  # auth schemes are case-insensitive (RFC 9110 §11.1)
        "DPOP",
    ],
)
def test_scheme_is_case_insensitive(
    client: TestClient, services: AuthServices, dpop: DpopCaller, scheme: str
) -> None:
    token = token_for(services, jkt=dpop.key.jkt)
    headers = dpop.headers(token, "/probe/exchange")
    headers["Authorization"] = f"{scheme} {token}"
    response = client.get("/probe/exchange", headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("principal", "path"),
    [
        # A partner with audit:own may read its own entries.
        (OTHER_PARTNER, "/probe/audit-any"),
        # The DPO with audit:read may read them all.
        ("fg-lekstroom", "/probe/audit-any"),
        # Any authenticated principal, the DPO included.
        ("fg-lekstroom", "/probe/any"),
    ],
)
def test_any_of_several_scopes_admits(
    client: TestClient, services: AuthServices, dpop: DpopCaller, principal: str, path: str
) -> None:
    token = token_for(services, principal, jkt=dpop.key.jkt)
    response = client.get(path, headers=dpop.headers(token, path))
    assert response.status_code == 200, response.text
    assert response.json()["principal"] == principal


def test_token_from_the_endpoint_opens_the_api(
    client: TestClient, services: AuthServices, forge: Forge, dpop: DpopCaller
) -> None:
    granted = client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": VICTIM,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": forge.assertion(),
            "scope": "exchange",
        },
        headers={"DPoP": dpop.token_request_proof()},
    )
    assert granted.json()["token_type"] == "DPoP"
    token = granted.json()["access_token"]
    response = client.get("/probe/exchange", headers=dpop.headers(token, "/probe/exchange"))
    assert response.status_code == 200, response.text


# --- refused: no usable token ---------------------------------------------------


def test_missing_authorization_header_is_refused(
    client: TestClient, services: AuthServices
) -> None:
    response = client.get("/probe/exchange")
    # RFC 6750 §3.1 (and RFC 9449 §7.1): no credentials at all, so the
    # challenge names no error, only the scheme and its algorithms.
    assert_refused(
        response, services, status=401, code="invalid_token", challenge=MISSING, principal=None
    )


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        # Basic credentials where an access token belongs.
        ("Basic Z2VtZWVudGU6Z2VoZWlt", "DPoP or Bearer scheme"),
        # The scheme with nothing after it.
        ("DPoP", "b64token"),
        # Two spaces: the token would start with a blank.
        ("DPoP  {token}", "b64token"),
        # Characters outside the b64token alphabet (RFC 6750 §2.1, RFC 9449 §7.1).
        ("DPoP {token}<script>", "b64token"),
        # Not a JWT at all.
        ("DPoP not-a-jwt", "does not parse"),
        # 9 KiB: bigger than any token we issue.
        ("DPoP " + "a" * 9000, "at most 8192 bytes"),
        # A client assertion instead of an access token.
        ("DPoP {assertion}", "expected typ"),
    ],
)
def test_unusable_authorization_header_is_refused(
    client: TestClient,
    services: AuthServices,
    forge: Forge,
    dpop: DpopCaller,
    authorization: str,
    reason: str,
) -> None:
    token = token_for(services, jkt=dpop.key.jkt)
    header = authorization.format(token=token, assertion=forge.assertion())
    headers = {**dpop.headers(token, "/probe/exchange"), "Authorization": header}
    response = client.get("/probe/exchange", headers=headers)
    event = assert_refused(
        response, services, status=401, code="invalid_token", challenge=INVALID, principal=None
    )
    assert reason in event["reasons"][0]["detail"]


def test_two_authorization_headers_are_refused(
    client: TestClient, services: AuthServices, dpop: DpopCaller
) -> None:
    # Which one a proxy checked and which one we read could differ.
    token = token_for(services, jkt=dpop.key.jkt)
    proof = dpop.headers(token, "/probe/exchange")["DPoP"]
    response = client.get(
        "/probe/exchange",
        headers=[
            ("Authorization", f"DPoP {token}"),
            ("Authorization", "DPoP other"),
            ("DPoP", proof),
        ],
    )
    event = assert_refused(
        response, services, status=401, code="invalid_token", challenge=INVALID, principal=None
    )
    assert "one Authorization header, got 2" in event["reasons"][0]["detail"]


def test_token_in_the_query_string_is_refused(
    client: TestClient, services: AuthServices, dpop: DpopCaller
) -> None:
    # Even alongside a valid header: a token in a URL has already leaked.
    token = token_for(services, jkt=dpop.key.jkt)
    response = client.get(
        "/probe/exchange",
        params={"access_token": token},
        headers=dpop.headers(token, "/probe/exchange"),
    )
    event = assert_refused(
        response, services, status=401, code="invalid_token", challenge=INVALID, principal=None
    )
    assert "query" in event["reasons"][0]["detail"]
    assert token not in event["reasons"][0]["detail"]


def test_expired_token_is_refused(
    client: TestClient, services: AuthServices, clock: SteppingClock, dpop: DpopCaller
) -> None:
    token = token_for(services, jkt=dpop.key.jkt)
    clock.advance(300 + 30 + 1)
    response = client.get("/probe/exchange", headers=dpop.headers(token, "/probe/exchange"))
    event = assert_refused(
        response, services, status=401, code="invalid_token", challenge=INVALID, principal=None
    )
    assert "expected exp after" in event["reasons"][0]["detail"]


def test_token_signed_by_a_partner_is_refused(
    client: TestClient, services: AuthServices, forge: Forge, dpop: DpopCaller
) -> None:
    key = forge.key(VICTIM)
    claims = jwt.decode(token_for(services, jkt=dpop.key.jkt), options={"verify_signature": False})
    claims["scope"] = "audit:read"
    forged = jwt.encode(
        claims, key.private_key, algorithm=key.alg, headers={"typ": "at+jwt", "kid": key.kid}
    )
    response = client.get("/probe/audit-read", headers=dpop.headers(forged, "/probe/audit-read"))
    assert_refused(
        response, services, status=401, code="invalid_token", challenge=INVALID, principal=None
    )


def test_token_of_a_principal_no_longer_in_the_convenant_is_refused(
    client: TestClient, services: AuthServices, dpop: DpopCaller
) -> None:
    # Signed by the broker while the partner was in the convenant; it has since left.
    token = services.token_issuer.issue(
        principal="vertrokken-partner",
        role="corporatie",
        function=None,
        scopes=frozenset({"exchange"}),
        now=services.clock.now(),
        jkt=dpop.key.jkt,
    ).access_token
    response = client.get("/probe/exchange", headers=dpop.headers(token, "/probe/exchange"))
    event = assert_refused(
        response, services, status=401, code="invalid_token", challenge=INVALID, principal=None
    )
    assert "vertrokken-partner" in event["reasons"][0]["detail"]


def test_token_of_a_principal_whose_role_changed_is_refused(
    client: TestClient, services: AuthServices, dpop: DpopCaller
) -> None:
    # The police claiming the gemeente's role: the convenant now in force decides.
    token = services.token_issuer.issue(
        principal=OTHER_PARTNER,
        role="gemeente",
        function=None,
        scopes=frozenset({"exchange"}),
        now=services.clock.now(),
        jkt=dpop.key.jkt,
    ).access_token
    response = client.get("/probe/exchange", headers=dpop.headers(token, "/probe/exchange"))
    assert_refused(
        response, services, status=401, code="invalid_token", challenge=INVALID, principal=None
    )


def test_token_from_a_retired_broker_key_is_refused(
    client: TestClient, services: AuthServices, dpop: DpopCaller
) -> None:
    retired = generate_signing_key()
    claims = jwt.decode(token_for(services, jkt=dpop.key.jkt), options={"verify_signature": False})
    token = jwt.encode(
        claims,
        retired.private_key,
        algorithm="EdDSA",
        headers={"typ": "at+jwt", "kid": retired.kid},
    )
    response = client.get("/probe/exchange", headers=dpop.headers(token, "/probe/exchange"))
    assert_refused(
        response, services, status=401, code="invalid_token", challenge=INVALID, principal=None
    )


# --- refused: valid token, wrong scope -------------------------------------------


@pytest.mark.parametrize(
    ("principal", "scopes", "probe"),
    [
        # The police asking for the DPO's audit:read.
        (OTHER_PARTNER, None, ("/probe/audit-read", "audit:read")),
        # The DPO asking to exchange data.
        ("fg-lekstroom", None, ("/probe/exchange", "exchange")),
        # A gemeente token narrowed to cases:read, used for an exchange.
        (VICTIM, frozenset({"cases:read"}), ("/probe/exchange", "exchange")),
        # Neither audit scope: the challenge names both.
        (VICTIM, frozenset({"exchange"}), ("/probe/audit-any", "audit:own audit:read")),
    ],
)
def test_token_lacking_the_scope_is_refused_with_403(
    client: TestClient,
    services: AuthServices,
    dpop: DpopCaller,
    principal: str,
    scopes: frozenset[str] | None,
    probe: tuple[str, str],
) -> None:
    path, challenge_scope = probe
    token = token_for(services, principal, scopes, jkt=dpop.key.jkt)
    response = client.get(path, headers=dpop.headers(token, path))
    challenge = f'DPoP error="insufficient_scope", scope="{challenge_scope}"'
    assert_refused(
        response,
        services,
        status=403,
        code="insufficient_scope",
        challenge=challenge,
        principal=principal,
    )


def test_refusal_record_carries_the_callers_trace_id(
    client: TestClient, services: AuthServices
) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    response = client.get(
        "/probe/exchange", headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"}
    )
    event = assert_refused(
        response, services, status=401, code="invalid_token", challenge=MISSING, principal=None
    )
    assert event["trace_id"] == trace_id


def test_refusal_detail_never_reaches_the_caller(
    client: TestClient, services: AuthServices, dpop: DpopCaller
) -> None:
    token = token_for(services, OTHER_PARTNER, jkt=dpop.key.jkt)
    response = client.get("/probe/audit-read", headers=dpop.headers(token, "/probe/audit-read"))
    assert response.status_code == 403
    assert OTHER_PARTNER not in response.text
    assert "expected" not in response.text


# --- the factory itself ------------------------------------------------------------


@pytest.mark.parametrize(
    "scopes",
    [
        ("admin",),  # a scope the broker does not define: a typo would lock nobody out
        ("exchange", "audit:everything"),  # one good, one unknown
        (),  # no scope at all must not mean "no scope needed"
    ],
)
def test_dependency_factory_refuses_unknown_or_no_scopes(scopes: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="scope"):
        require_any_scope(*scopes)


def test_require_scope_refuses_an_unknown_scope() -> None:
    with pytest.raises(ValueError, match="scope"):
        require_scope("cases:delete")


def test_leeway_does_not_stretch_beyond_thirty_seconds(
    client: TestClient, services: AuthServices, clock: SteppingClock, dpop: DpopCaller
) -> None:
    # A token is good while now < exp + 30 s; at exp + 30 s it is not.
    token = token_for(services, jkt=dpop.key.jkt)
    clock.advance(300 + 29)
    response = client.get("/probe/exchange", headers=dpop.headers(token, "/probe/exchange"))
    assert response.status_code == 200
    clock.advance(1)
    response = client.get("/probe/exchange", headers=dpop.headers(token, "/probe/exchange"))
    assert response.status_code == 401
