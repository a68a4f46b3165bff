"""The OAuth edge over HTTP: token endpoint, metadata, JWKS, and the audit trail.

Every refusal must answer RFC 6749 §5.2 JSON and leave exactly one
security_event in the (real, SQLite) audit log. Token requests carry a DPoP
proof with the broker's nonce, as every client of the example convenant
must (RFC 9449 §5); tests/auth/test_dpop.py covers the proof's defects.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from broker.audit.sqlite_store import SqliteAuditStore
from broker.auth.replay import RedisReplayCache
from broker.auth.tokens import verify_access_token
from broker.convenant.model import SCOPES
from broker.keys import KeyStore, keyset_from_jwks
from tests.auth.conftest import AuthServices, TestClient, dpop_for, security_events
from tests.auth.forgeries import (
    FORGED_ASSERTIONS,
    ISSUER,
    OTHER_PARTNER,
    STRANGER,
    VICTIM,
    Build,
    Forge,
)
from tests.auth.helpers import JWT_BEARER

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def request_token(
    client: TestClient,
    assertion: str,
    *,
    client_id: str = VICTIM,
    scope: str | None = None,
    headers: dict[str, str] | None = None,
    proof: bool = True,
    **extra: str,
) -> httpx.Response:
    """A token request; with `proof`, a fresh DPoP proof with the current nonce."""
    if proof:
        headers = {"DPoP": dpop_for(client).token_request_proof(), **(headers or {})}
    data = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
        **extra,
    }
    if scope is not None:
        data["scope"] = scope
    response: httpx.Response = client.post("/oauth/token", data=data, headers=headers)
    return response


def assert_refused(
    response: httpx.Response,
    services: AuthServices,
    *,
    error: str,
    status: int,
    principal: str | None,
) -> dict[str, Any]:
    """The RFC 6749 answer and the one audit entry that must go with it."""
    assert response.status_code == status, response.text
    assert response.json() == {
        "error": error,
        "error_description": response.json()["error_description"],
    }
    assert response.headers["cache-control"] == "no-store"
    events = security_events(services)
    assert len(events) == 1, events
    (event,) = events
    assert event["event"] == "token_refused"
    assert event["decision"] == "deny"
    assert event["reasons"][0]["code"] == error
    assert event["requester"] == {"partner": principal}
    assert re.fullmatch(r"[0-9a-f]{32}", event["trace_id"])
    return event


# --- tokens that are granted -------------------------------------------------


def test_partner_obtains_a_token_with_its_roles_scopes(
    client: TestClient, services: AuthServices, forge: Forge, keystore: KeyStore
) -> None:
    response = request_token(client, forge.assertion())
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "DPoP"  # RFC 9449 §5: bound to the proof's key
    assert response.headers["dpop-nonce"]  # RFC 9449 §8.2: the nonce for the next proof
    assert 0 < body["expires_in"] <= 300
    assert body["scope"] == "audit:own cases:read cases:write exchange"
    claims = verify_access_token(
        body["access_token"], keys=keystore.public_keyset("broker"), issuer=ISSUER, now=forge.now
    )
    assert (claims.principal, claims.role) == (VICTIM, "gemeente")
    assert security_events(services) == []  # a grant is not a refusal


def test_auditor_obtains_an_audit_read_token(
    client: TestClient, forge: Forge, keystore: KeyStore
) -> None:
    response = request_token(
        client,
        forge.assertion(client_id="fg-lekstroom"),
        client_id="fg-lekstroom",
        scope="audit:read",
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "audit:read"
    claims = verify_access_token(
        response.json()["access_token"],
        keys=keystore.public_keyset("broker"),
        issuer=ISSUER,
        now=forge.now,
    )
    assert (claims.principal, claims.role, claims.scopes) == (
        "fg-lekstroom",
        "fg",
        frozenset({"audit:read"}),
    )


def test_partner_asking_a_subset_gets_exactly_that_subset(client: TestClient, forge: Forge) -> None:
    response = request_token(
        client, forge.assertion(client_id=OTHER_PARTNER), client_id=OTHER_PARTNER, scope="exchange"
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "exchange"


def test_charset_parameter_on_the_form_media_type_is_accepted(
    client: TestClient, forge: Forge
) -> None:
    form = httpx.QueryParams(
        {
            "grant_type": "client_credentials",
            "client_id": VICTIM,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": forge.assertion(),
        }
    )
    response = client.post(
        "/oauth/token",
        content=str(form),
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
            "DPoP": dpop_for(client).token_request_proof(),
        },
    )
    assert response.status_code == 200, response.text


# --- assertions that are refused ---------------------------------------------


@pytest.mark.parametrize(("build", "reason"), FORGED_ASSERTIONS)
def test_forged_assertion_is_refused_and_logged(
    client: TestClient,
    services: AuthServices,
    forge: Forge,
    build: Build,
    reason: str,
) -> None:
    client_id, assertion = build(forge)
    convenant = services.convenant
    response = request_token(client, assertion, client_id=client_id)
    known = client_id if convenant.role_of(client_id) else None
    event = assert_refused(response, services, error="invalid_client", status=401, principal=known)
    detail = event["reasons"][0]["detail"]
    # The log says why; for a stranger, that it is a stranger.
    assert reason in detail if known else "expected a client of the convenant" in detail


def test_replayed_assertion_is_rejected(
    client: TestClient, services: AuthServices, forge: Forge
) -> None:
    assertion = forge.assertion()
    assert request_token(client, assertion).status_code == 200
    event = assert_refused(
        request_token(client, assertion),
        services,
        error="invalid_client",
        status=401,
        principal=VICTIM,
    )
    assert "already presented" in event["reasons"][0]["detail"]


def test_unknown_client_gets_the_same_answer_as_a_bad_signature(
    client: TestClient, services: AuthServices, forge: Forge
) -> None:
    bad_signature = request_token(
        client, forge.assertion(key=forge.key(OTHER_PARTNER), headers={"kid": forge.victim_kid()})
    )
    unknown = request_token(
        client,
        forge.assertion(key=forge.key(OTHER_PARTNER), client_id=STRANGER),
        client_id=STRANGER,
    )
    assert unknown.status_code == bad_signature.status_code == 401
    assert unknown.content == bad_signature.content
    # Every answer brings a fresh nonce (RFC 9449 §8.2): present in both, random in each.
    unknown_headers, bad_headers = dict(unknown.headers), dict(bad_signature.headers)
    assert unknown_headers.pop("dpop-nonce") != bad_headers.pop("dpop-nonce")
    assert unknown_headers == bad_headers
    first, second = security_events(services)
    # Only a principal the convenant knows is named; the stranger stays in the clipped detail.
    assert first["requester"] == {"partner": VICTIM}
    assert second["requester"] == {"partner": None}
    assert STRANGER in second["reasons"][0]["detail"]


@pytest.mark.parametrize(
    ("client_id", "scope"),
    [
        # A care partner may not write to the case register.
        ("buurtteam-lekstroom", "cases:write"),
        # A partner may not read the whole audit log.
        (VICTIM, "audit:read"),
        # The DPO may not exchange data.
        ("fg-lekstroom", "exchange"),
    ],
)
def test_scope_beyond_the_role_is_refused_and_logged(
    client: TestClient, services: AuthServices, forge: Forge, client_id: str, scope: str
) -> None:
    allowed = services.convenant.scopes_for(client_id)
    assert scope not in allowed, "the example convenant now allows this; pick another row"
    response = request_token(
        client, forge.assertion(client_id=client_id), client_id=client_id, scope=scope
    )
    event = assert_refused(
        response, services, error="invalid_scope", status=400, principal=client_id
    )
    assert scope in event["reasons"][0]["detail"]


@pytest.mark.parametrize(
    "grant_type",
    [
        "password",  # resource-owner passwords: never
        "authorization_code",  # no authorization endpoint exists
        "refresh_token",  # no refresh tokens are issued
    ],
)
def test_other_grant_types_are_unsupported(
    client: TestClient, services: AuthServices, forge: Forge, grant_type: str
) -> None:
    response = request_token(client, forge.assertion(), grant_type=grant_type)
    assert_refused(response, services, error="unsupported_grant_type", status=400, principal=VICTIM)


# --- malformed requests ------------------------------------------------------


def test_json_body_is_refused_as_invalid_request(
    client: TestClient, services: AuthServices, forge: Forge
) -> None:
    response = client.post(
        "/oauth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": VICTIM,
            "client_assertion_type": JWT_BEARER,
            "client_assertion": forge.assertion(),
        },
    )
    event = assert_refused(response, services, error="invalid_request", status=400, principal=None)
    assert "application/json" in event["reasons"][0]["detail"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        # Multipart: a different parser, a different set of surprises.
        (
            b"--x\r\n"
            b'Content-Disposition: form-data; name="grant_type"\r\n\r\n'
            b"client_credentials\r\n--x--\r\n",
            "multipart/form-data; boundary=x",
        ),
        # No content type at all.
        (b"grant_type=client_credentials", ""),
        # A parameter given twice: which one wins is a parser-differential attack (RFC 6749 §3.2).
        (
            b"grant_type=client_credentials&grant_type=password&client_id=gemeente-lekstroom",
            "application/x-www-form-urlencoded",
        ),
        # A field without "=": not form encoding.
        (b"grant_type", "application/x-www-form-urlencoded"),
        # Percent-encoded bytes that are not UTF-8.
        (b"grant_type=%ff%fe", "application/x-www-form-urlencoded"),
        # Raw non-ASCII bytes in the body.
        ("grant_type=clïent_credentials".encode(), "application/x-www-form-urlencoded"),
        # 20 KiB: more than any genuine token request (8 KiB assertion plus small fields).
        (b"client_assertion=" + b"a" * 20_000, "application/x-www-form-urlencoded"),
        # Seventeen fields: more than the parser is allowed to collect.
        (b"&".join(b"f%d=1" % n for n in range(17)), "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_body_is_refused_as_invalid_request(
    client: TestClient, services: AuthServices, body: bytes, content_type: str
) -> None:
    response = client.post("/oauth/token", content=body, headers={"Content-Type": content_type})
    assert_refused(response, services, error="invalid_request", status=400, principal=None)


def test_duplicated_client_id_names_no_principal_in_the_log(
    client: TestClient, services: AuthServices
) -> None:
    body = b"grant_type=client_credentials&client_id=gemeente-lekstroom&client_id=politie-lekstroom"
    response = client.post(
        "/oauth/token", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_refused(response, services, error="invalid_request", status=400, principal=None)


# --- failing backends ----------------------------------------------------------


@pytest.fixture
def unreachable_redis() -> Iterator[redis.Redis]:
    client = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    yield client
    client.close()


def test_replay_cache_outage_answers_503_and_issues_nothing(
    client: TestClient, services: AuthServices, forge: Forge, unreachable_redis: redis.Redis
) -> None:
    services.replay_cache = RedisReplayCache(unreachable_redis, namespace="kbtest-down")
    response = request_token(client, forge.assertion())
    event = assert_refused(
        response, services, error="temporarily_unavailable", status=503, principal=VICTIM
    )
    assert "Redis" in event["reasons"][0]["detail"]
    assert "access_token" not in response.text


def test_audit_outage_turns_a_refusal_into_503(
    client: TestClient, audit_store: SqliteAuditStore, forge: Forge
) -> None:
    audit_store.close()  # the real store, really closed: every write now fails
    response = request_token(client, forge.assertion(claims={"aud": "https://elsewhere.example"}))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert response.headers["cache-control"] == "no-store"


# --- tracing ---------------------------------------------------------------------


def test_refusal_record_carries_the_callers_trace_id(
    client: TestClient, services: AuthServices, forge: Forge
) -> None:
    response = request_token(client, "not-a-jwt", headers={"traceparent": TRACEPARENT})
    event = assert_refused(response, services, error="invalid_client", status=401, principal=VICTIM)
    assert event["trace_id"] == TRACE_ID


@pytest.mark.parametrize(
    ("traceparent", "offered"),
    [
        # An all-zero trace id is invalid (W3C Trace Context §3.2.2.3).
        ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", "0" * 32),
        # Upper-case hex is invalid.
        (f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01", TRACE_ID),
        # A header stuffed with a second header's text (injection attempt).
        (f"00-{TRACE_ID} X-Injected: 1", TRACE_ID),
        # Version ff is forbidden.
        (f"ff-{TRACE_ID}-00f067aa0ba902b7-01", TRACE_ID),
    ],
)
def test_invalid_traceparent_starts_a_fresh_trace(
    client: TestClient, services: AuthServices, traceparent: str, offered: str
) -> None:
    response = client.post(
        "/oauth/token",
        content=b"grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded", "traceparent": traceparent},
    )
    event = assert_refused(response, services, error="invalid_request", status=400, principal=None)
    assert event["trace_id"] != offered


# --- discovery documents ---------------------------------------------------------


def test_metadata_document_describes_the_token_endpoint(client: TestClient) -> None:
    response = client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["issuer"] == ISSUER
    assert metadata["token_endpoint"] == ISSUER + "/oauth/token"
    assert metadata["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
    assert metadata["grant_types_supported"] == ["client_credentials"]
    assert metadata["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert metadata["token_endpoint_auth_signing_alg_values_supported"] == ["EdDSA", "ES256"]
    assert metadata["scopes_supported"] == list(SCOPES)
    # RFC 9449 §5.1: what a DPoP proof may be signed with.
    assert metadata["dpop_signing_alg_values_supported"] == ["EdDSA", "ES256"]
    # Never advertise what would be refused.
    assert "none" not in metadata["token_endpoint_auth_signing_alg_values_supported"]
    assert "authorization_endpoint" not in metadata


def test_jwks_publishes_the_broker_key_and_no_private_part(
    client: TestClient, forge: Forge, keystore: KeyStore
) -> None:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    jwks = response.json()
    assert jwks["keys"], jwks
    for jwk in jwks["keys"]:
        assert {"kty", "kid", "alg", "use"} <= set(jwk)
        assert jwk["use"] == "sig"
        assert "d" not in jwk  # the private scalar
    assert keystore.signing_key("broker").kid in {jwk["kid"] for jwk in jwks["keys"]}
    # What the JWKS publishes is enough to verify a token the endpoint issued.
    token = request_token(client, forge.assertion()).json()["access_token"]
    claims = verify_access_token(token, keys=keyset_from_jwks(jwks), issuer=ISSUER, now=forge.now)
    assert claims.principal == VICTIM


def test_openapi_documents_the_form_body_and_the_token_schemes(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    token = document["paths"]["/oauth/token"]["post"]
    form = token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert set(form["required"]) == {
        "grant_type",
        "client_id",
        "client_assertion_type",
        "client_assertion",
    }
    assert {"400", "401", "503"} <= set(token["responses"])
    assert [p["name"] for p in token["parameters"]] == ["DPoP"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["DPoP"]["scheme"] == "DPoP"
    assert schemes["BearerToken"]["scheme"] == "bearer"
    assert document["paths"]["/probe/exchange"]["get"]["security"] == [
        {"DPoP": []},
        {"BearerToken": []},
    ]
