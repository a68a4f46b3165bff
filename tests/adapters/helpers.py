"""Shared test helpers: build queries, sign calls as the broker, post them over HTTP."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import httpx

from broker.adapter_protocol import (
    ADAPTER_QUERY_PATH,
    ANSWER_SIGNATURE_HEADER,
    AdapterAnswer,
    AdapterQuery,
    sign_adapter_call,
    verify_answer_document,
)
from broker.keys import KeyStore

ISSUER = "http://127.0.0.1:8400"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"

# The fixture people (shared with the lead's demo; see the adapter fixtures).
LINDELAAN_12 = {"postcode": "4101 AB", "huisnummer": 12, "toevoeging": None, "plaats": "Lekstroom"}
BEUKENSTRAAT_3A = {"postcode": "4102 CD", "huisnummer": 3, "toevoeging": "A", "plaats": "Lekstroom"}
MARCO = ("Marco de Wit", date(1979, 3, 14), "overlastgever", LINDELAAN_12)
FATIMA = ("Fatima el Amrani", date(1985, 7, 2), "melder", LINDELAAN_12)
JOOP = ("Joop Verbeek", date(1952, 11, 30), "omwonende", LINDELAAN_12)
SANNE = ("Sanne Bakker", date(1990, 5, 21), "overlastgever", BEUKENSTRAAT_3A)
AHMET = ("Ahmet Yilmaz", date(1968, 9, 9), "melder", BEUKENSTRAAT_3A)
STRANGER = ("Pieter Onbekend", date(1970, 1, 1), "omwonende", LINDELAAN_12)

Person = tuple[str, date, str, dict[str, Any]]


def make_query(
    query_type: str,
    person: Person,
    *,
    period: tuple[date, date] | None = None,
    exchange: str = "ex_test",
    fields: tuple[str, ...] = (),
) -> AdapterQuery:
    name, birth_date, role, address = person
    return AdapterQuery.model_validate(
        {
            "exchange": exchange,
            "query": query_type,
            "case": "case_test",
            "subject": {"ref": "s1", "role": role, "name": name, "birth_date": birth_date},
            "address": address,
            "period": None if period is None else {"from": period[0], "to": period[1]},
            "fields": list(fields),
        }
    )


def call_token(keys: KeyStore, *, partner_id: str, body: bytes, now: datetime | None = None) -> str:
    return sign_adapter_call(
        key=keys.signing_key("broker"),
        issuer=ISSUER,
        adapter_partner=partner_id,
        body=body,
        now=now or datetime.now(UTC),
    )


def post_query(
    url: str,
    body: bytes,
    *,
    token: str | None,
    content_type: str = "application/json",
    authorization: str | None = None,
) -> httpx.Response:
    """POST a query; `authorization` replaces the whole header (for other schemes)."""
    headers = {"Content-Type": content_type, "traceparent": TRACEPARENT}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if authorization is not None:
        headers["Authorization"] = authorization
    return httpx.post(url + ADAPTER_QUERY_PATH, content=body, headers=headers, timeout=10)


def ask(url: str, keys: KeyStore, *, partner_id: str, query: AdapterQuery) -> AdapterAnswer:
    """Ask as the broker does and verify the answer as the broker does; assert 200."""
    body = query.to_body()
    response = post_query(url, body, token=call_token(keys, partner_id=partner_id, body=body))
    assert response.status_code == 200, response.text
    return verify_answer_document(
        response.content,
        signature=response.headers[ANSWER_SIGNATURE_HEADER],
        keys=keys.public_keyset(partner_id),
        exchange=query.exchange,
        query=query.query,
    )


def assert_problem(response: httpx.Response, *, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    assert problem["code"] == code
    assert {"type", "title", "detail"} <= problem.keys()
    assert ANSWER_SIGNATURE_HEADER.lower() not in response.headers
