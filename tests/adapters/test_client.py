"""BrokerClient against a real token endpoint on loopback that verifies its assertions.

The broker's own token endpoint is built elsewhere; this one is the smallest
honest counterpart: it checks the RFC 7523 assertion with pyjwt and the
partner's public key, refuses a reused jti, and issues opaque tokens.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from adapters.runner import RunningServer, start_server
from adapters.sdk.client import (
    ASSERTION_TTL_SECONDS,
    CLIENT_ASSERTION_TYPE,
    TOKEN_REFRESH_MARGIN_SECONDS,
    BrokerClient,
    TokenRequestError,
)
from adapters.sdk.tracing import trace_id_of
from broker.keys import KeyStore

CLIENT_ID = "woonstichting-de-linge"
TOKEN_TTL = 300


@dataclass
class TokenEndpointLog:
    """What the test token endpoint saw and issued."""

    assertions: list[dict[str, Any]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    seen_jtis: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class SteppingClock:
    """A real Clock whose time a test moves forward explicitly."""

    def __init__(self) -> None:
        self.moment = datetime.now(UTC)

    def now(self) -> datetime:
        return self.moment


def _token_app(
    keystore: KeyStore, log: TokenEndpointLog, base_url: list[str], clock: SteppingClock
) -> FastAPI:
    app = FastAPI()

    def _invalid_client() -> JSONResponse:
        return JSONResponse({"error": "invalid_client"}, status_code=401)

    @app.post("/oauth/token")
    async def token(request: Request) -> JSONResponse:
        form = await request.form()
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE
            or form.get("client_id") not in {CLIENT_ID}
        ):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        assertion = str(form.get("client_assertion"))
        header = jwt.get_unverified_header(assertion)
        trusted = keystore.public_keyset(CLIENT_ID).get(header.get("kid"))
        if trusted is None:
            return _invalid_client()
        try:
            claims = jwt.decode(
                assertion,
                trusted.public_key,
                algorithms=[trusted.alg],
                audience=base_url[0] + "/oauth/token",
                issuer=CLIENT_ID,
                # Time is the shared test clock's, checked below.
                options={
                    "require": ["iss", "sub", "aud", "jti", "iat", "exp"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            return _invalid_client()
        now = clock.now().timestamp()
        if claims["iat"] > now + 5 or claims["exp"] <= now - 5 or claims["exp"] > now + 300:
            return _invalid_client()
        with log.lock:
            if claims["sub"] != CLIENT_ID or claims["jti"] in log.seen_jtis:
                return _invalid_client()
            log.seen_jtis.add(claims["jti"])
            log.assertions.append({"header": header, "claims": claims, "form": dict(form)})
            access_token = secrets.token_urlsafe(24)
            log.issued.append(access_token)
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": TOKEN_TTL,
                "scope": form.get("scope", ""),
            }
        )

    @app.get("/v1/echo")
    async def echo(request: Request) -> dict[str, str | None]:
        return {
            "authorization": request.headers.get("authorization"),
            "traceparent": request.headers.get("traceparent"),
        }

    @app.post("/v1/echo")
    async def echo_post(request: Request) -> dict[str, Any]:
        return {"authorization": request.headers.get("authorization"), "json": await request.json()}

    return app


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def token_server(
    keystore: KeyStore, clock: SteppingClock
) -> Iterator[tuple[RunningServer, TokenEndpointLog]]:
    log = TokenEndpointLog()
    base_url: list[str] = []  # known only once the server has bound its port
    with start_server(_token_app(keystore, log, base_url, clock)) as server:
        base_url.append(server.url)
        yield server, log


@pytest.fixture
def client(
    keystore: KeyStore, token_server: tuple[RunningServer, TokenEndpointLog], clock: SteppingClock
) -> Iterator[BrokerClient]:
    server, _ = token_server
    with BrokerClient(
        base_url=server.url + "/",
        client_id=CLIENT_ID,
        signing_key=keystore.signing_key(CLIENT_ID),
        scopes="cases:read exchange",
        clock=clock,
    ) as broker_client:
        yield broker_client


def test_expired_assertion_is_refused_by_the_token_endpoint(
    keystore: KeyStore, token_server: tuple[RunningServer, TokenEndpointLog]
) -> None:
    # Guards the endpoint above: it really checks time, so the caching test means something.
    server, log = token_server
    late = SteppingClock()
    late.moment -= timedelta(seconds=ASSERTION_TTL_SECONDS + 60)
    with (
        BrokerClient(
            base_url=server.url,
            client_id=CLIENT_ID,
            signing_key=keystore.signing_key(CLIENT_ID),
            clock=late,
        ) as stale,
        pytest.raises(TokenRequestError),
    ):
        stale.token()
    assert log.issued == []


def test_client_assertion_has_the_rfc7523_shape(client: BrokerClient, keystore: KeyStore) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    assertion = client.client_assertion(now=now)
    key = keystore.signing_key(CLIENT_ID)
    header = jwt.get_unverified_header(assertion)
    assert header == {"alg": key.alg, "kid": key.kid, "typ": "JWT"}
    claims = jwt.decode(
        assertion,
        key.public_key,
        algorithms=[key.alg],
        audience=client.base_url + "/oauth/token",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == client.base_url + "/oauth/token"
    assert claims["iat"] == int(now.timestamp())
    assert claims["exp"] == claims["iat"] + ASSERTION_TTL_SECONDS
    assert ASSERTION_TTL_SECONDS <= 300  # contract.md: at most five minutes ahead
    assert len(claims["jti"]) >= 16


def test_every_assertion_has_a_unique_jti(client: BrokerClient) -> None:
    now = datetime.now(UTC)
    jtis = {
        jwt.decode(client.client_assertion(now=now), options={"verify_signature": False})["jti"]
        for _ in range(20)
    }
    assert len(jtis) == 20


def test_token_endpoint_accepts_the_assertion_and_issues_a_token(
    client: BrokerClient, token_server: tuple[RunningServer, TokenEndpointLog]
) -> None:
    _, log = token_server
    token = client.token()
    assert log.issued == [token]
    form = log.assertions[0]["form"]
    assert form["grant_type"] == "client_credentials"
    assert form["client_id"] == CLIENT_ID
    assert form["scope"] == "cases:read exchange"


def test_access_token_is_reused_until_shortly_before_it_expires(
    client: BrokerClient,
    clock: SteppingClock,
    token_server: tuple[RunningServer, TokenEndpointLog],
) -> None:
    _, log = token_server
    first = client.token()
    clock.moment += timedelta(seconds=TOKEN_TTL - TOKEN_REFRESH_MARGIN_SECONDS - 1)
    assert client.token() == first
    assert len(log.issued) == 1
    clock.moment += timedelta(seconds=1)
    second = client.token()
    assert second != first
    assert len(log.issued) == 2


def test_calls_carry_the_bearer_token_and_a_fresh_traceparent(
    client: BrokerClient, token_server: tuple[RunningServer, TokenEndpointLog]
) -> None:
    _, log = token_server
    first = client.get("/v1/echo").json()
    second = client.get("/v1/echo").json()
    assert first["authorization"] == f"Bearer {log.issued[0]}"
    assert trace_id_of(first["traceparent"]) is not None
    assert trace_id_of(first["traceparent"]) != trace_id_of(second["traceparent"])
    assert len(log.issued) == 1  # one token served both calls


def test_given_traceparent_is_forwarded_unchanged(client: BrokerClient) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    echoed = client.get("/v1/echo", headers={"traceparent": traceparent}).json()
    assert echoed["traceparent"] == traceparent


def test_post_sends_json_with_the_bearer_token(client: BrokerClient) -> None:
    echoed = client.post("/v1/echo", json={"case": "c1"}).json()
    assert echoed["json"] == {"case": "c1"}
    assert echoed["authorization"].startswith("Bearer ")


@pytest.mark.parametrize("path", ["https://evil.example/steal", "//evil.example/steal", "v1/echo"])
def test_client_never_sends_its_token_outside_the_broker(client: BrokerClient, path: str) -> None:
    with pytest.raises(ValueError, match="path"):
        client.get(path)


def test_rejected_assertion_raises_with_the_oauth_error(
    keystore: KeyStore, token_server: tuple[RunningServer, TokenEndpointLog]
) -> None:
    server, log = token_server
    # Signed with another partner's key: the endpoint cannot verify it.
    with (
        BrokerClient(
            base_url=server.url,
            client_id=CLIENT_ID,
            signing_key=keystore.signing_key("woongoed-lekstroom"),
        ) as impostor,
        pytest.raises(TokenRequestError) as caught,
    ):
        impostor.token()
    assert caught.value.status == 401
    assert caught.value.error == "invalid_client"
    assert log.issued == []


def test_client_uses_a_given_http_client_and_leaves_it_open(
    keystore: KeyStore, token_server: tuple[RunningServer, TokenEndpointLog]
) -> None:
    server, _ = token_server
    with httpx.Client(timeout=5) as http:
        with BrokerClient(
            base_url=server.url,
            client_id=CLIENT_ID,
            signing_key=keystore.signing_key(CLIENT_ID),
            http=http,
        ) as broker_client:
            assert broker_client.get("/v1/echo").status_code == 200
        assert not http.is_closed
