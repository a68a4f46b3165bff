"""The adapter edge over real HTTP: authentication, replay, routing, errors, logging.

Runs against the police adapter; every adapter shares this edge (adapters.sdk).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from adapters.runner import RunningServer
from broker.adapter_protocol import ANSWER_SIGNATURE_HEADER, MAX_QUERY_BYTES, sign_adapter_call
from broker.keys import KeyStore
from tests.adapters.helpers import (
    ISSUER,
    MARCO,
    TRACE_ID,
    assert_problem,
    call_token,
    make_query,
    post_query,
)

PARTNER = "politie-lekstroom"
QUERY = "politie.meldingen"

ServerFactory = Callable[[str, str], RunningServer]


@pytest.fixture(scope="module")
def url(adapter_server: ServerFactory) -> str:
    return adapter_server("politie", PARTNER).url


def test_call_without_token_is_unauthorized(url: str) -> None:
    response = post_query(url, make_query(QUERY, MARCO).to_body(), token=None)
    assert_problem(response, status=401, code="invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJicm9rZXIifQ.",  # alg none
        "a.b.c",
    ],
)
def test_call_with_garbage_token_is_unauthorized(url: str, token: str) -> None:
    response = post_query(url, make_query(QUERY, MARCO).to_body(), token=token)
    assert_problem(response, status=401, code="invalid_token")


@pytest.mark.parametrize("authorization", ["Basic YnJva2VyOmJyb2tlcg==", "Bearer", "DPoP x.y.z"])
def test_call_without_a_bearer_token_is_unauthorized(url: str, authorization: str) -> None:
    body = make_query(QUERY, MARCO).to_body()
    response = post_query(url, body, token=None, authorization=authorization)
    assert_problem(response, status=401, code="invalid_token")


def test_call_token_signed_by_a_partner_is_unauthorized(url: str, keystore: KeyStore) -> None:
    # The gemeente signs its own "call" to the police adapter, bypassing the broker.
    body = make_query(QUERY, MARCO).to_body()
    token = sign_adapter_call(
        key=keystore.signing_key("gemeente-lekstroom"),
        issuer=ISSUER,
        adapter_partner=PARTNER,
        body=body,
        now=datetime.now(UTC),
    )
    assert_problem(post_query(url, body, token=token), status=401, code="invalid_token")


def test_call_token_for_another_adapter_is_unauthorized(url: str, keystore: KeyStore) -> None:
    body = make_query(QUERY, MARCO).to_body()
    token = call_token(keystore, partner_id="gemeente-lekstroom", body=body)
    assert_problem(post_query(url, body, token=token), status=401, code="invalid_token")


def test_expired_call_token_is_unauthorized(url: str, keystore: KeyStore) -> None:
    body = make_query(QUERY, MARCO).to_body()
    stale = datetime.now(UTC) - timedelta(minutes=5)
    token = call_token(keystore, partner_id=PARTNER, body=body, now=stale)
    assert_problem(post_query(url, body, token=token), status=401, code="invalid_token")


def test_body_swapped_under_a_valid_token_is_unauthorized(url: str, keystore: KeyStore) -> None:
    # An on-path attacker keeps the token and asks about someone else.
    original = make_query(QUERY, MARCO).to_body()
    token = call_token(keystore, partner_id=PARTNER, body=original)
    swapped = original.replace(b"Marco de Wit", b"Sanne Bakker")
    assert_problem(post_query(url, swapped, token=token), status=401, code="invalid_token")


def test_replayed_call_token_is_unauthorized(url: str, keystore: KeyStore) -> None:
    body = make_query(QUERY, MARCO).to_body()
    token = call_token(keystore, partner_id=PARTNER, body=body)
    assert post_query(url, body, token=token).status_code == 200
    replay = post_query(url, body, token=token)
    assert_problem(replay, status=401, code="invalid_token")


def test_query_type_the_adapter_does_not_serve_is_not_found(url: str, keystore: KeyStore) -> None:
    body = make_query("corporatie.huurrelatie", MARCO).to_body()
    token = call_token(keystore, partner_id=PARTNER, body=body)
    assert_problem(post_query(url, body, token=token), status=404, code="query_not_served")


def test_authentic_but_malformed_query_is_a_bad_request(url: str, keystore: KeyStore) -> None:
    body = b'{"exchange": "ex_1", "query": "politie.meldingen", "requester": "gemeente"}'
    token = call_token(keystore, partner_id=PARTNER, body=body)
    response = post_query(url, body, token=token)
    assert_problem(response, status=400, code="invalid_request")
    assert "gemeente" not in response.text


def test_query_in_another_media_type_is_refused(url: str, keystore: KeyStore) -> None:
    body = make_query(QUERY, MARCO).to_body()
    token = call_token(keystore, partner_id=PARTNER, body=body)
    response = post_query(url, body, token=token, content_type="text/plain")
    assert_problem(response, status=415, code="unsupported_media_type")


def test_oversized_query_is_refused_before_authentication(url: str) -> None:
    response = post_query(url, b"{" + b" " * MAX_QUERY_BYTES + b"}", token=None)
    assert_problem(response, status=413, code="request_too_large")


def test_unauthorized_answer_carries_no_personal_data(url: str, keystore: KeyStore) -> None:
    body = make_query(QUERY, MARCO).to_body()
    response = post_query(url, body, token="x")
    assert "Marco" not in response.text
    assert "1979" not in response.text


def test_declaration_is_open_and_lists_every_field_with_its_category(url: str) -> None:
    response = httpx.get(url + "/v1/declaration", timeout=10)
    assert response.status_code == 200
    document = response.json()
    assert document["partner"] == PARTNER
    fields = {f["name"]: f for f in document["exchanges"][QUERY]}
    assert fields["meldingen"] == {"name": "meldingen", "category": "nuisance", "special": False}
    assert fields["strafrechtelijke_antecedenten"]["special"] is True


def test_healthz_needs_no_token(url: str) -> None:
    response = httpx.get(url + "/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/nothing-here", 404, "not_found"),
        ("GET", "/v1/queries", 405, "method_not_allowed"),
    ],
)
def test_framework_errors_are_problem_documents(
    url: str, method: str, path: str, status: int, code: str
) -> None:
    response = httpx.request(method, url + path, timeout=10)
    assert_problem(response, status=status, code=code)


def test_answer_is_not_cached(url: str, keystore: KeyStore) -> None:
    body = make_query(QUERY, MARCO).to_body()
    response = post_query(url, body, token=call_token(keystore, partner_id=PARTNER, body=body))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert ANSWER_SIGNATURE_HEADER.lower() in response.headers


def test_call_log_names_exchange_and_trace_id_but_no_personal_data(
    url: str, keystore: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    query = make_query(QUERY, MARCO, exchange="ex_logcheck")
    body = query.to_body()
    with caplog.at_level(logging.INFO, logger="adapters.sdk"):
        response = post_query(url, body, token=call_token(keystore, partner_id=PARTNER, body=body))
        assert response.status_code == 200
        # a rejected call is logged too
        post_query(url, body, token="garbage")
    lines = [r.getMessage() for r in caplog.records if r.name == "adapters.sdk"]
    answered = [line for line in lines if "ex_logcheck" in line and "outcome=answered" in line]
    assert len(answered) == 1
    assert f"trace_id={TRACE_ID}" in answered[0]
    assert any("rejected" in line for line in lines)
    for line in lines:
        for personal in ("Marco", "de Wit", "1979-03-14", "Lindelaan", "4101"):
            assert personal not in line
