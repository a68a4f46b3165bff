"""create_adapter_app with hand-written sources: the edge refuses to send what a source gets wrong.

The sources here are real `PartnerSource` implementations with deliberate
faults (an undeclared field, a relabelled category, a crash), not mocks.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from adapters.runner import start_server
from adapters.sdk import FieldDeclaration, PartnerSource, create_adapter_app
from broker.adapter_protocol import AdapterAnswer, AdapterQuery, AnswerField, DataCategory
from broker.auth.replay import MemoryReplayCache
from broker.clock import SystemClock
from broker.keys import KeyStore
from tests.adapters.helpers import (
    ISSUER,
    MARCO,
    SANNE,
    Person,
    ask,
    assert_problem,
    call_token,
    make_query,
    post_query,
)

PARTNER = "politie-lekstroom"
QUERY = "politie.meldingen"
DECLARATIONS = {
    QUERY: (
        FieldDeclaration("meldingen_aantal", DataCategory.nuisance),
        FieldDeclaration("strafrechtelijke_antecedenten", DataCategory.criminal),
    )
}


class FixedSource:
    """Answers every query with the given fields, whatever they are."""

    def __init__(self, fields: dict[str, AnswerField]) -> None:
        self.fields = fields

    def answer(self, query: AdapterQuery) -> AdapterAnswer:
        return AdapterAnswer(
            exchange=query.exchange, query=query.query, subject_known=True, fields=self.fields
        )


class CrashingSource:
    def answer(self, query: AdapterQuery) -> AdapterAnswer:
        raise RuntimeError(f"database down while looking up {query.subject.name}")


class MisaddressedSource:
    """Answers as if asked about another exchange (a cached answer, say)."""

    def answer(self, query: AdapterQuery) -> AdapterAnswer:
        return AdapterAnswer(exchange="ex_other", query=query.query, subject_known=False, fields={})


class HourAhead:
    """A real Clock set one hour fast, as a misconfigured host would be."""

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(hours=1)


@contextlib.contextmanager
def _serve(
    keystore: KeyStore, source: PartnerSource, *, replay: MemoryReplayCache | None = None
) -> Iterator[str]:
    app = create_adapter_app(
        partner_id=PARTNER,
        source=source,
        declarations=DECLARATIONS,
        signing_key=keystore.signing_key(PARTNER),
        broker_keys=keystore.public_keyset("broker"),
        broker_issuer=ISSUER,
        clock=SystemClock(),
        replay_cache=replay,
    )
    with start_server(app) as server:
        yield server.url


def _post(url: str, keystore: KeyStore, person: Person = MARCO) -> httpx.Response:
    body = make_query(QUERY, person).to_body()
    return post_query(url, body, token=call_token(keystore, partner_id=PARTNER, body=body))


def test_declared_answer_is_signed_and_sent(keystore: KeyStore) -> None:
    source = FixedSource({"meldingen_aantal": AnswerField(category=DataCategory.nuisance, value=3)})
    with _serve(keystore, source) as url:
        answer = ask(url, keystore, partner_id=PARTNER, query=make_query(QUERY, MARCO))
        assert answer.fields["meldingen_aantal"].value == 3


@pytest.mark.parametrize(
    "fields",
    [
        # a field the adapter never declared
        {"diagnose": AnswerField(category=DataCategory.health, value="x")},
        # a criminal field relabelled as ordinary nuisance data
        {"strafrechtelijke_antecedenten": AnswerField(category=DataCategory.nuisance, value=[])},
    ],
    ids=["undeclared-field", "relabelled-category"],
)
def test_answer_outside_the_declaration_is_never_sent(
    keystore: KeyStore, fields: dict[str, AnswerField]
) -> None:
    with _serve(keystore, FixedSource(fields)) as url:
        response = _post(url, keystore)
        assert_problem(response, status=500, code="source_failed")


def test_answer_to_another_exchange_is_never_sent(keystore: KeyStore) -> None:
    with _serve(keystore, MisaddressedSource()) as url:
        assert_problem(_post(url, keystore), status=500, code="source_failed")


def test_source_crash_is_a_500_without_personal_data_in_answer_or_log(
    keystore: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    with _serve(keystore, CrashingSource()) as url:
        with caplog.at_level(logging.INFO, logger="adapters.sdk"):
            response = _post(url, keystore)
        assert_problem(response, status=500, code="source_failed")
        assert "Marco" not in response.text
        logged = " ".join(r.getMessage() for r in caplog.records)
        assert "RuntimeError" in logged
        assert "Marco" not in logged


def test_full_replay_cache_fails_closed(keystore: KeyStore) -> None:
    # A cache that cannot remember one more jti must refuse, not wave calls through.
    replay = MemoryReplayCache(clock=SystemClock(), max_entries=1)
    source = FixedSource({})
    with _serve(keystore, source, replay=replay) as url:
        assert _post(url, keystore).status_code == 200
        assert_problem(_post(url, keystore, SANNE), status=503, code="cache_unavailable")


def test_adapter_without_declarations_cannot_be_built(keystore: KeyStore) -> None:
    with pytest.raises(ValueError, match="declared"):
        create_adapter_app(
            partner_id=PARTNER,
            source=FixedSource({}),
            declarations={},
            signing_key=keystore.signing_key(PARTNER),
            broker_keys=keystore.public_keyset("broker"),
            broker_issuer=ISSUER,
            clock=SystemClock(),
        )


def test_now_comes_from_the_clock_given(keystore: KeyStore) -> None:
    # An adapter whose clock is an hour fast sees a fresh token as expired.
    app = create_adapter_app(
        partner_id=PARTNER,
        source=FixedSource({}),
        declarations=DECLARATIONS,
        signing_key=keystore.signing_key(PARTNER),
        broker_keys=keystore.public_keyset("broker"),
        broker_issuer=ISSUER,
        clock=HourAhead(),
    )
    with start_server(app) as server:
        assert_problem(_post(server.url, keystore), status=401, code="invalid_token")
