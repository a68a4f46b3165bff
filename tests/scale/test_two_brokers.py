"""Two broker processes on one PostgreSQL and one Redis: one log, one replay cache.

The production profile scales out by running more broker processes against
the same database and cache (docs/adr/0006). This test starts two real
brokers as separate OS processes with `ketenbroker serve --no-adapters`:
`A` with one worker and `B` with `--workers 2` (three processes serving in
all), both started at the same moment, behind one issuer URL as a load
balancer would put them. The adapters run in this process. Eight client
threads, each pinned to one broker, send exchanges at once, and afterwards
the test checks, from the database itself:

* the log's indexes are exactly 0..n-1 (no duplicate, no gap);
* the load added exactly the entries the pipeline's rules ask for: intent
  plus disclosure per answered exchange, one `deny` per refusal;
* every answer's receipt points at its disclosure, whose intent precedes it;
* `AuditLog.verify` on a fresh store passes, every receipt checkpoint from
  either broker is signed and has a consistency proof to the final tree,
  and both brokers report the same final checkpoint;
* a DPoP proof `jti` or client-assertion `jti` accepted by one broker is
  refused by the other (the replay cache is Redis, shared).

Run with -s to see the throughput of the run (a figure, not an assertion).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from adapters.sdk.client import BrokerClient
from broker.audit.checkpoint import Checkpoint, verify_checkpoint
from broker.audit.entries import DISCLOSED, INTENT
from broker.audit.log import AuditLog
from broker.audit.merkle import leaf_hash, verify_consistency
from broker.audit.postgres_store import PostgresAuditStore
from broker.audit.store import MAX_QUERY_LIMIT, AuditQuery, StoredEntry
from broker.clock import SystemClock
from broker.keys import KeyStore
from broker.ratelimit.policy import MAX_LIMIT, RateLimits
from broker.settings import PROJECT_ROOT, Settings
from broker.stack import LOOPBACK, free_port, start_adapters
from tests.conftest import REDIS_URL, throwaway_database

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

# The one public URL of both brokers (issuer, token audience, every `htu`),
# as a TLS-terminating load balancer would publish it. Nothing resolves it:
# each client's transport sends plain HTTP to its own broker on loopback.
ISSUER = "https://broker.lekstroom.test"
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
THREADS = 8
REQUESTS_PER_THREAD = 25
REFUSE_EVERY = 5  # every fifth request asks for another purpose: one `deny` entry
LOAD_TIMEOUT_SECONDS = 120.0

GEMEENTE = "gemeente-lekstroom"
DE_LINGE = "woonstichting-de-linge"
POLITIE = "politie-lekstroom"
FG = "fg-lekstroom"

CASE = {
    "reference": "WO-SCALE-1",
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
    ],
    "partners": [POLITIE],
    "criteria": [1, 2, 6],
}


class PinnedTransport(httpx.HTTPTransport):
    """Sends every request to one broker process, whatever origin its URL names.

    The load balancer's job: clients address the issuer, and the proof's
    `htu` says the issuer, while the bytes go to this broker.
    """

    def __init__(self, target: str) -> None:
        super().__init__()
        self._target = httpx.URL(target)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self._target.scheme, host=self._target.host, port=self._target.port
        )
        return super().handle_request(request)


class BrokerProcess:
    """`ketenbroker serve --no-adapters` as an OS process group of its own."""

    def __init__(self, *, name: str, env: dict[str, str], workers: int, log_file: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.log_file = log_file
        command = [sys.executable, "-m", "broker.cli", "serve", "--no-adapters"]
        command += ["--host", LOOPBACK, "--port", str(self.port), "--workers", str(workers)]
        with log_file.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603  # our own interpreter and module
                command,
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # uvicorn's workers are children: stop() ends the whole group.
                start_new_session=True,
            )

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.process.returncode}: {self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready in {STARTUP_TIMEOUT_SECONDS}s: {self.log()}")

    def stop(self) -> None:
        """SIGTERM to the group, then SIGKILL to whatever of it is left: no worker survives."""
        group = self.process.pid  # start_new_session: the group id is the leader's pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-3000:]


@dataclass
class Network:
    brokers: dict[str, BrokerProcess]
    keystore: KeyStore
    postgres_dsn: str
    _clients: list[BrokerClient] = field(default_factory=list)
    _http: list[httpx.Client] = field(default_factory=list)

    def client(self, broker: str, principal: str) -> BrokerClient:
        http = self.raw(broker)
        self._http.append(http)
        client = BrokerClient(
            base_url=ISSUER,
            client_id=principal,
            signing_key=self.keystore.signing_key(principal),
            http=http,
        )
        self._clients.append(client)
        return client

    def raw(self, broker: str) -> httpx.Client:
        """A plain HTTP client to one broker, for requests built by hand."""
        return httpx.Client(transport=PinnedTransport(self.brokers[broker].url), timeout=30.0)

    def close(self) -> None:
        for client in self._clients:
            client.close()
        for http in self._http:  # passed in, so the clients leave them open
            http.close()


def _broker_env(
    keystore: KeyStore, dsn: str, namespace: str, adapters: dict[str, str]
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("KETENBROKER_")}
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")])
    env |= {
        "KETENBROKER_PROFILE": "production",
        "KETENBROKER_ISSUER": ISSUER,
        "KETENBROKER_KEYS_DIR": str(keystore.root),
        "KETENBROKER_POSTGRES_DSN": dsn,
        "KETENBROKER_REDIS_URL": REDIS_URL,
        "KETENBROKER_REDIS_NAMESPACE": namespace,
        # What is shared is under test here, not where decisions are made.
        "KETENBROKER_POLICY_ENGINE": "embedded",
        "KETENBROKER_ADAPTER_URLS": json.dumps(adapters),
        # Load on purpose; limits are tested in tests/ratelimit.
        "KETENBROKER_RATE_LIMITS": json.dumps(dict.fromkeys(RateLimits.model_fields, MAX_LIMIT)),
    }
    return env


def _signed_policy_bundle(keystore: KeyStore, out: Path) -> Path:
    """The production way: `ketenbroker policy bundle` signs, the brokers only verify."""
    keystore.ensure_policy_signer()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("KETENBROKER_")}
    command = [sys.executable, "-m", "broker.cli", "policy", "bundle"]
    command += ["--out", str(out), "--dir", str(keystore.root)]
    made = subprocess.run(  # noqa: S603  # our own interpreter and module
        command,
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    return out


@pytest.fixture(scope="module")
def fresh_database() -> Iterator[str]:
    """A database of its own for this module, dropped afterwards."""
    with throwaway_database("ketenbroker_scale") as dsn:
        yield dsn


@pytest.fixture(scope="module")
def fresh_namespace() -> Iterator[str]:
    """A Redis key prefix for this module's brokers, deleted afterwards."""
    namespace = f"kbtest:{secrets.token_hex(6)}"
    yield namespace
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for key in client.scan_iter(match=f"{namespace}:*"):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture(scope="module")
def network(
    keystore: KeyStore,
    fresh_database: str,
    fresh_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Network]:
    workdir = tmp_path_factory.mktemp("two-brokers")
    bundle = _signed_policy_bundle(keystore, workdir / "policy-bundle.tar.gz")
    settings = Settings(issuer=ISSUER, keys_dir=keystore.root)
    adapters, servers = start_adapters(settings, issuer=ISSUER)
    brokers: dict[str, BrokerProcess] = {}
    network = Network(brokers=brokers, keystore=keystore, postgres_dsn=fresh_database)
    try:
        env = _broker_env(keystore, fresh_database, fresh_namespace, adapters)
        env["KETENBROKER_POLICY_BUNDLE_PATH"] = str(bundle)
        # Both at once: schema creation and start-up reconciliation race here.
        for name, workers in (("A", 1), ("B", 2)):
            brokers[name] = BrokerProcess(
                name=name, env=env, workers=workers, log_file=workdir / f"broker-{name}.log"
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        for broker in brokers.values():
            broker.wait_ready(deadline)
        yield network
    finally:
        network.close()
        for broker in brokers.values():
            broker.stop()
        for server in servers:
            server.stop()


def _open_case(network: Network) -> str:
    gemeente, owner = network.client("A", GEMEENTE), network.client("B", DE_LINGE)
    created = gemeente.post("/v1/cases", json=CASE)
    assert created.status_code == 201, created.text
    case_id: str = created.json()["id"]
    # Consent through the other broker: the case register is shared too.
    consent = owner.post(f"/v1/cases/{case_id}/consent", json={"decision": "granted"})
    assert consent.status_code == 200, consent.text
    moved = gemeente.post(f"/v1/cases/{case_id}/transitions", json={"to": "in_behandeling"})
    assert moved.status_code == 200, moved.text
    return case_id


def _exchange_body(case_id: str, *, refused: bool) -> dict[str, Any]:
    return {
        "case": case_id,
        "subject": "og-1",
        "query": "politie.meldingen",
        # Opsporing is not this convenant's purpose: refused before any intent.
        "purpose": "opsporing" if refused else "aanpak_woonoverlast",
        "period": {"from": "2025-01-01", "to": "2026-11-01"},
        "on_behalf_of": {"user": "j.devries", "function": "casusregisseur"},
    }


@dataclass(frozen=True)
class Answer:
    broker: str
    exchange: str
    log_index: int
    leaf_hash: str
    checkpoint: Checkpoint


@dataclass
class Tally:
    answers: list[Answer] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _ask(client: BrokerClient, broker: str, case_id: str, tally: Tally, deadline: float) -> None:
    for n in range(REQUESTS_PER_THREAD):
        if time.monotonic() > deadline:
            with tally.lock:
                tally.unexpected.append("load deadline passed")
            return
        refused = n % REFUSE_EVERY == REFUSE_EVERY - 1
        response = client.post("/v1/exchanges", json=_exchange_body(case_id, refused=refused))
        with tally.lock:
            if response.status_code == 200 and not refused:
                document = response.json()
                receipt = document["receipt"]
                tally.answers.append(
                    Answer(
                        broker=broker,
                        exchange=document["exchange"],
                        log_index=receipt["log_index"],
                        leaf_hash=receipt["leaf_hash"],
                        checkpoint=Checkpoint.from_dict(receipt["checkpoint"]),
                    )
                )
            elif response.status_code == 403 and refused:
                tally.refusals[response.json().get("code")] += 1
            else:
                tally.unexpected.append(f"{response.status_code} {response.text[:200]}")


def _all_entries(audit: AuditLog) -> list[StoredEntry]:
    found: list[StoredEntry] = []
    cursor = -1
    while page := audit.entries(AuditQuery(after_index=cursor, limit=MAX_QUERY_LIMIT)):
        found.extend(page)
        cursor = page[-1].index
    return found


def _checkpoint_of(network: Network, broker: str) -> Checkpoint:
    response = network.client(broker, FG).get("/v1/audit/checkpoint")
    assert response.status_code == 200, response.text
    return Checkpoint.from_dict(response.json())


def test_two_brokers_keep_one_gap_free_verifiable_log_under_concurrent_load(
    network: Network,
) -> None:
    case_id = _open_case(network)
    clients = [(b, network.client(b, GEMEENTE)) for b in ("A", "B") * (THREADS // 2)]
    for _, client in clients:
        client.token()  # before the count starts: token requests are not exchanges
    size_before = _checkpoint_of(network, "A").size

    tally = Tally()
    started = time.monotonic()
    deadline = started + LOAD_TIMEOUT_SECONDS
    threads = [
        threading.Thread(target=_ask, args=(client, broker, case_id, tally, deadline), daemon=True)
        for broker, client in clients
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + 5)
    elapsed = time.monotonic() - started
    assert all(not t.is_alive() for t in threads), "a load thread is still running"
    assert tally.unexpected == []

    refused = THREADS * (REQUESTS_PER_THREAD // REFUSE_EVERY)
    answered = THREADS * REQUESTS_PER_THREAD - refused
    assert len(tally.answers) == answered
    assert tally.refusals == {"purpose_mismatch": refused}
    assert {a.broker for a in tally.answers} == {"A", "B"}
    print(f"\ntwo brokers: {answered + refused} exchanges in {elapsed:.2f}s")

    store = PostgresAuditStore(network.postgres_dsn)
    try:
        audit = AuditLog(
            store=store, signing_key=network.keystore.signing_key("broker"), clock=SystemClock()
        )
        stored = _all_entries(audit)
        # One sequence across writers: every index once, none missing.
        assert [s.index for s in stored] == list(range(len(stored)))
        entries = {s.index: s.entry for s in stored}
        added = [entries[i] for i in range(size_before, len(stored))]
        # The pipeline's rules: intent + closing entry per answer, one deny per refusal.
        assert len(added) == 2 * answered + refused
        kinds = Counter((e.get("kind"), e.get("decision"), "intent_index" in e) for e in added)
        assert kinds[("exchange", INTENT, False)] == answered
        assert kinds[("exchange", "deny", False)] == refused
        assert sum(n for (k, d, closes), n in kinds.items() if d in DISCLOSED and closes) == (
            answered
        )

        for answer in tally.answers:
            entry = entries[answer.log_index]
            assert entry["exchange"] == answer.exchange
            assert entry["decision"] in DISCLOSED
            assert leaf_hash(entry).hex() == answer.leaf_hash
            intent = entries[entry["intent_index"]]
            assert (intent["decision"], intent["exchange"]) == (INTENT, answer.exchange)
            assert entry["intent_index"] < answer.log_index

        broker_keys = network.keystore.public_keyset("broker")
        trusted = [a.checkpoint for a in tally.answers]
        report = audit.verify(trusted=trusted)
        assert report.ok, report.problems
        final = audit.checkpoint()
        assert final.size == len(stored)
        for checkpoint in trusted:
            verify_checkpoint(checkpoint, keys=broker_keys)
            verify_consistency(
                first=checkpoint.size,
                second=final.size,
                first_root=bytes.fromhex(checkpoint.root_hash),
                second_root=bytes.fromhex(final.root_hash),
                proof=[
                    bytes.fromhex(h) for h in audit.consistency_proof(checkpoint.size, final.size)
                ],
            )
    finally:
        store.close()

    # Each broker's accumulator caught up with the other's appends.
    for broker in ("A", "B"):
        seen = _checkpoint_of(network, broker)
        assert (seen.size, seen.root_hash) == (final.size, final.root_hash), broker


@pytest.mark.parametrize(("first", "second"), [("A", "B"), ("B", "A")])
def test_dpop_proof_accepted_by_one_broker_is_refused_by_the_other(
    network: Network, first: str, second: str
) -> None:
    client = network.client(first, GEMEENTE)
    token = client.token()
    proof = client.dpop_proof("GET", ISSUER + "/v1/convenant", access_token=token)
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
    with network.raw(first) as to_first, network.raw(second) as to_second:
        accepted = to_first.get(ISSUER + "/v1/convenant", headers=headers)
        assert accepted.status_code == 200, accepted.text
        replayed = to_second.get(ISSUER + "/v1/convenant", headers=headers)
    assert replayed.status_code == 401, replayed.text
    assert replayed.json()["code"] == "invalid_dpop_proof"
    assert 'error="invalid_dpop_proof"' in replayed.headers["www-authenticate"]


@pytest.mark.parametrize(("first", "second"), [("A", "B"), ("B", "A")])
def test_client_assertion_accepted_by_one_broker_is_refused_by_the_other(
    network: Network, first: str, second: str
) -> None:
    client = network.client(first, GEMEENTE)
    client.token()  # primes the server nonce the proofs below carry
    assertion = client.client_assertion(now=SystemClock().now())
    form = {
        "grant_type": "client_credentials",
        "client_id": GEMEENTE,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    endpoint = ISSUER + "/oauth/token"
    with network.raw(first) as to_first, network.raw(second) as to_second:
        # A fresh proof each time: only the assertion is replayed.
        accepted = to_first.post(
            endpoint, data=form, headers={"DPoP": client.dpop_proof("POST", endpoint)}
        )
        assert accepted.status_code == 200, accepted.text
        replayed = to_second.post(
            endpoint, data=form, headers={"DPoP": client.dpop_proof("POST", endpoint)}
        )
    assert replayed.status_code == 401, replayed.text
    assert replayed.json()["error"] == "invalid_client"
    assert "access_token" not in replayed.text
