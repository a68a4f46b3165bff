"""An exchange pipeline in one process, on real parts, with the wire in the test's hand.

The pipeline talks real HTTP to the police adapter on loopback, logs to a
real SQLite audit store, decides with the embedded policy engine, and reads
cases from a real case register. The only thing the test controls is the
wire between gateway and adapter (`Wire`): an httpx transport that forwards
to the adapter and can drop the call, or alter, unsign or delay the answer
on its way back, as a broken network, a broken adapter or an attacker on
the path would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.registry import adapter_for_partner
from adapters.runner import RunningServer, start_server
from broker.audit.entries import exchange_entry
from broker.audit.log import AuditLog
from broker.audit.sqlite_store import SqliteAuditStore
from broker.audit.store import AuditQuery, StoredEntry
from broker.cases.model import CaseStatus
from broker.cases.register import CaseRegister
from broker.cases.requests import CreateCaseRequest
from broker.cases.store import SqlCaseStore
from broker.clock import rfc3339
from broker.convenant import Convenant
from broker.exchange.gateway import AdapterGateway
from broker.exchange.pipeline import ExchangePipeline, Requester
from broker.exchange.requests import ExchangeRequest
from broker.keys import KeyStore
from broker.metrics import Metrics
from broker.policy.decision_log import SqlDecisionLog
from broker.policy.embedded import EmbeddedPolicyEngine
from broker.policy.engine import PolicyBundle, PolicyEngine
from broker.policy.inputs import convenant_data
from broker.settings import PROJECT_ROOT
from broker.sql import SqlConnection
from broker.tracing import parse_traceparent

ISSUER = "http://127.0.0.1:8400"
GEMEENTE = "gemeente-lekstroom"
POLITIE = "politie-lekstroom"
DE_LINGE = "woonstichting-de-linge"
# Inside the example convenant's validity (2026-01-01 to 2030-12-31).
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
IN_FLIGHT_LIMIT = timedelta(seconds=12)

CASE = {
    "reference": "WO-TEST-1",
    "kind": "complex",
    "address": {"postcode": "4101 AB", "huisnummer": 12, "plaats": "Lekstroom"},
    "dwelling_owner": DE_LINGE,
    "subjects": [
        {
            "ref": "og-1",
            "role": "overlastgever",
            "name": "Marco de Wit",
            "birth_date": "1979-03-14",
        },
        {"ref": "m-1", "role": "melder", "name": "Fatima el Amrani", "birth_date": "1985-07-02"},
    ],
    "partners": [POLITIE],
    "criteria": [1, 2, 6],
}


class MovableClock:
    """A real `Clock` whose time moves only when the test (or the wire) says so."""

    def __init__(self, moment: datetime = T0) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


Tamper = Callable[[httpx.Response], httpx.Response]


class Wire(httpx.BaseTransport):
    """The path from the gateway to the adapter: real HTTP, unless the test interferes."""

    def __init__(self) -> None:
        self._real = httpx.HTTPTransport()
        self.drop = False  # the adapter cannot be reached
        self.tamper: Tamper | None = None  # what happens to the answer on its way back
        self.on_request: Callable[[httpx.Request], None] | None = None
        self.calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.on_request is not None:
            self.on_request(request)
        if self.drop:
            raise httpx.ConnectError("connection refused", request=request)
        response = self._real.handle_request(request)
        if self.tamper is None:
            return response
        response.read()
        return self.tamper(response)

    def close(self) -> None:
        self._real.close()


def rebuilt(
    response: httpx.Response, *, content: bytes, drop: tuple[str, ...] = ()
) -> httpx.Response:
    """`response` with another body and without the `drop` headers: a man in the middle."""
    gone = {name.lower() for name in (*drop, "content-length", "transfer-encoding")}
    headers = {k: v for k, v in response.headers.items() if k.lower() not in gone}
    return httpx.Response(response.status_code, headers=headers, content=content)


@pytest.fixture(scope="module")
def module_clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def clock(module_clock: MovableClock) -> MovableClock:
    module_clock.moment = T0
    return module_clock


@pytest.fixture(scope="module")
def police_adapter(
    keystore: KeyStore, convenant: Convenant, module_clock: MovableClock
) -> Iterator[RunningServer]:
    kind = adapter_for_partner(convenant, POLITIE)
    app = kind.build_app(
        partner_id=POLITIE, keys=keystore, broker_issuer=ISSUER, clock=module_clock
    )
    server = start_server(app)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def policy(convenant: Convenant) -> PolicyEngine:
    bundle = PolicyBundle.from_directory(PROJECT_ROOT / "policies").with_data(
        convenant_data(convenant)
    )
    return EmbeddedPolicyEngine(bundle)


@dataclass
class Rig:
    """One pipeline and everything it touches."""

    pipeline: ExchangePipeline
    audit: AuditLog
    store: SqliteAuditStore
    sqlite_path: Path
    wire: Wire
    clock: MovableClock
    case_id: str
    convenant: Convenant
    parts: dict[str, Any]  # what the pipeline was built from
    metrics: Metrics  # shared by the pipeline and its gateway

    def use_policy(self, engine: PolicyEngine) -> None:
        """Rebuild the pipeline around another policy engine."""
        self.pipeline = ExchangePipeline(**{**self.parts, "policy": engine})

    def request(self, **overrides: Any) -> ExchangeRequest:
        body: dict[str, Any] = {
            "case": self.case_id,
            "subject": "og-1",
            "query": "politie.meldingen",
            "purpose": "aanpak_woonoverlast",
            "period": {"from": "2025-01-01", "to": "2026-11-01"},
            "on_behalf_of": {"user": "j.devries", "function": "casusregisseur"},
        }
        body.update(overrides)
        return ExchangeRequest.model_validate(body)

    def requester(self) -> Requester:
        partner = self.convenant.partner(GEMEENTE)
        assert partner is not None
        return Requester(
            partner=GEMEENTE,
            role=partner.role.value,
            function=partner.function,
            user="j.devries",
            user_function="casusregisseur",
        )

    def run(self, **overrides: Any) -> Any:
        return self.pipeline.run(
            requester=self.requester(),
            request=self.request(**overrides),
            trace=parse_traceparent(None),
        )

    def entries(self) -> list[StoredEntry]:
        found: list[StoredEntry] = []
        cursor = -1
        while page := self.audit.entries(AuditQuery(after_index=cursor, limit=1000)):
            found.extend(page)
            cursor = page[-1].index
        return found

    def exchange_entries(self) -> list[dict[str, Any]]:
        return [s.entry for s in self.entries() if s.entry.get("kind") == "exchange"]


@pytest.fixture
def rig(
    tmp_path: Path,
    keystore: KeyStore,
    convenant: Convenant,
    policy: PolicyEngine,
    police_adapter: RunningServer,
    clock: MovableClock,
) -> Iterator[Rig]:
    sqlite_path = tmp_path / "audit.sqlite3"
    store = SqliteAuditStore(sqlite_path)
    broker_key = keystore.signing_key("broker")
    audit = AuditLog(store=store, signing_key=broker_key, clock=clock)
    sql = SqlConnection(dialect="sqlite", sqlite_path=tmp_path / "cases.sqlite3")
    cases = CaseRegister(store=SqlCaseStore(sql, kek=keystore.data_kek()), convenant=convenant)
    case = cases.create(caller=GEMEENTE, request=CreateCaseRequest.model_validate(CASE), now=T0)
    cases.decide_consent(caller=DE_LINGE, case_id=case.id, granted=True, now=T0)
    cases.transition(caller=GEMEENTE, case_id=case.id, to=CaseStatus.in_behandeling, now=T0)
    wire = Wire()
    metrics = Metrics()
    gateway = AdapterGateway(
        urls={POLITIE: police_adapter.url},
        signing_key=broker_key,
        issuer=ISSUER,
        keys=keystore,
        timeout_seconds=5.0,
        http=httpx.Client(transport=wire, timeout=5.0),
        metrics=metrics,
    )
    parts: dict[str, Any] = {
        "convenant": convenant,
        "cases": cases,
        "policy": policy,
        "adapters": gateway,
        "audit": audit,
        "decisions": SqlDecisionLog(sql),
        "clock": clock,
        "signing_key": broker_key,
        "in_flight_limit": IN_FLIGHT_LIMIT,
        "metrics": metrics,
    }
    pipeline = ExchangePipeline(**parts)
    yield Rig(
        pipeline=pipeline,
        audit=audit,
        store=store,
        sqlite_path=sqlite_path,
        wire=wire,
        clock=clock,
        case_id=case.id,
        convenant=convenant,
        parts=parts,
        metrics=metrics,
    )
    gateway.close()
    sql.close()
    store.close()


def intent_entry(exchange: str, *, time: datetime, case: str = "case_x") -> dict[str, Any]:
    """An intent as the pipeline writes it, for reconciliation tests."""
    return exchange_entry(
        time=time,
        exchange_id=exchange,
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        convenant={"id": "lekstroom", "version": "1"},
        processing_activity="aanpak_woonoverlast",
        legal_basis={"law": "Wet politiegegevens", "article": "art. 19"},
        requester={"partner": GEMEENTE, "user": "j.devries", "function": "casusregisseur"},
        provider=POLITIE,
        case=case,
        subject="ps_abc",
        query="politie.meldingen",
        purpose="aanpak_woonoverlast",
        decision="intent",
        reasons=[],
        fields_disclosed=[],
        fields_withheld=[],
        policy_version="test",
        payload_hash=None,
    )


def closing_entry(
    intent: StoredEntry, *, decision: str, time: datetime, exchange: str | None = None
) -> dict[str, Any]:
    """The entry the pipeline writes to close `intent` (permit, partial or deny)."""
    entry = dict(intent.entry)
    entry.pop("index")
    entry.update(
        {
            "decision": decision,
            "time": rfc3339(time),
            "intent_index": intent.index,
        }
    )
    if exchange is not None:
        entry["exchange"] = exchange
    return entry
