"""Broken dependencies (issue 5, point 4): every fault fails closed.

Real faults, no doubles: the OPA stand-in (tests/support/opa_standin.py)
stopped, slowed past the engine's timeout, answering "undefined" or
garbage; Redis on a port where nothing listens; the audit table refusing
inserts (an SQLite trigger, a PostgreSQL CHECK constraint) or its whole
database refusing connections. In every case: a 503 (or a refusal),
nothing disclosed, and the audit log holds the refusal wherever it can
still be written, and nothing false where it cannot.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from broker.audit.postgres_store import PostgresAuditStore
from broker.convenant import load_convenant
from broker.keys import KeyStore
from broker.policy.engine import PolicyBundle
from broker.policy.inputs import convenant_data
from broker.policy.opa import OpaPolicyEngine
from broker.settings import PROJECT_ROOT
from broker.stack import LocalStack, start_local_stack
from tests.conftest import EXAMPLE_CONVENANT, POSTGRES_ADMIN_DSN, throwaway_database
from tests.security.conftest import (
    FG,
    GEMEENTE,
    WOONGOED,
    Attempt,
    Clients,
    DpopKey,
    StackForge,
    activate_case,
    assert_refused,
    attempt,
    audit_store_refusing_writes,
    dpop_headers,
    exchange_body,
    fetch_nonce,
    log_size,
    make_clients,
    register_case,
    request_token,
    signed_access_token,
    stack_base,
)
from tests.support.opa_standin import OpaStandIn

pytestmark = pytest.mark.e2e

# The engine gives OPA this long; the slow fault holds answers back longer.
POLICY_TIMEOUT_SECONDS = 0.5
SLOWER_THAN_THE_TIMEOUT = 2.0

# What the police adapter holds and an answer would disclose.
POLICE_FIELDS = ("meldingen_aantal", "politie_inzet", "fysiek_geweld_omwonenden", "meldingen")


def assert_nothing_disclosed(result: Attempt) -> None:
    for field in POLICE_FIELDS:
        assert field not in result.response.text, f"{field} in a failed exchange's answer"
    disclosed = [e for e in result.appended if e.get("decision") in {"permit", "partial"}]
    assert not disclosed, disclosed


def exchange(
    stack: LocalStack, client_for: Clients, case_id: str, principal: str = GEMEENTE
) -> Attempt:
    client = client_for(principal)
    body = exchange_body(case_id)
    return attempt(stack, lambda trace: client.post("/v1/exchanges", json=body, headers=trace))


# --- the policy engine ----------------------------------------------------------------------


@contextmanager
def opa_stack(
    keystore: KeyStore, workdir: Path, postgres_dsn: str
) -> Iterator[tuple[LocalStack, OpaStandIn]]:
    """A network whose broker asks the OPA stand-in (the real bundle, over OPA's REST API)."""
    bundle = PolicyBundle.from_directory(PROJECT_ROOT / "policies").with_data(
        convenant_data(load_convenant(EXAMPLE_CONVENANT))
    )
    base = {
        **stack_base(workdir, keystore, postgres_dsn),
        "storage_backend": "sqlite",
        "cache_backend": "memory",
    }
    with OpaStandIn() as opa:
        opa.serve_bundle(bundle, workdir / "bundle")
        engine = OpaPolicyEngine(
            url=opa.url, version=bundle.version, timeout_seconds=POLICY_TIMEOUT_SECONDS
        )
        with start_local_stack(base=base, policy=engine) as running:
            yield running, opa


@pytest.fixture(scope="module")
def with_opa(
    keystore: KeyStore, tmp_path_factory: pytest.TempPathFactory, postgres_server_dsn: str
) -> Iterator[tuple[LocalStack, OpaStandIn, Clients]]:
    workdir = tmp_path_factory.mktemp("security-opa")
    with opa_stack(keystore, workdir, postgres_server_dsn) as (running, opa):
        make, close = make_clients(running, keystore)
        yield running, opa, make
        close()


@pytest.fixture
def opa_case(with_opa: tuple[LocalStack, OpaStandIn, Clients]) -> str:
    _, _, client_for = with_opa
    case_id = register_case(client_for)
    activate_case(client_for, case_id)
    return case_id


def assert_policy_refusal(result: Attempt) -> None:
    assert_refused(result.response, status=503, code="policy_unavailable")
    assert_nothing_disclosed(result)
    result.assert_logged("policy_unavailable", principal=GEMEENTE)


def test_policy_engine_slow_denies(
    with_opa: tuple[LocalStack, OpaStandIn, Clients], opa_case: str
) -> None:
    stack, opa, client_for = with_opa
    with opa.faults(delay_seconds=SLOWER_THAN_THE_TIMEOUT):
        result = exchange(stack, client_for, opa_case)
    assert_policy_refusal(result)
    # The same question, OPA answering in time again: the refusal was the fault's.
    assert exchange(stack, client_for, opa_case).response.status_code == 200


def test_policy_undefined_denies(
    with_opa: tuple[LocalStack, OpaStandIn, Clients], opa_case: str
) -> None:
    """OPA's "undefined": an answer without `result`, from the right bundle."""
    stack, opa, client_for = with_opa
    undefined = json.dumps({"provenance": opa.provenance()}).encode()
    with opa.faults(raw_body=undefined):
        result = exchange(stack, client_for, opa_case)
    assert_policy_refusal(result)


def _answer(opa: OpaStandIn, result: Any, **provenance: Any) -> bytes:
    return json.dumps({"result": result, "provenance": provenance or opa.provenance()}).encode()


MALFORMED = [
    # Not JSON: a decision cut off mid-token.
    pytest.param(lambda _: {"malformed": True}, id="not-json"),
    # JSON, but not an object.
    pytest.param(lambda _: {"raw_body": b"[]"}, id="json-array"),
    # allow as a string.
    pytest.param(lambda opa: {"raw_body": _answer(opa, {"allow": "yes"})}, id="allow-a-string"),
    # allow with nothing else: no fields, no provider, no basis.
    pytest.param(lambda opa: {"raw_body": _answer(opa, {"allow": True})}, id="bare-allow"),
    # allow with an empty field list: nothing to disclose must not mean everything.
    pytest.param(
        lambda opa: {
            "raw_body": _answer(
                opa,
                {
                    "allow": True,
                    "refusals": [],
                    "fields": [],
                    "provider": "politie-lekstroom",
                    "legal_basis": {"law": "x"},
                },
            )
        },
        id="allow-no-fields",
    ),
    # A full permit, from a bundle with another revision: not the reviewed policy.
    pytest.param(
        lambda opa: {
            "raw_body": _answer(
                opa,
                {
                    "allow": True,
                    "refusals": [],
                    "fields": ["meldingen_aantal"],
                    "provider": "politie-lekstroom",
                    "legal_basis": {"law": "Wet politiegegevens"},
                },
                bundles={"rogue": {"revision": "sha256:" + "0" * 64}},
            )
        },
        id="permit-from-another-bundle",
    ),
    # OPA's error document with a 500.
    pytest.param(lambda _: {"fail_status": 500}, id="status-500"),
    # A redirect to another server, which the engine must not follow.
    pytest.param(lambda _: {"redirect_to": "http://127.0.0.1:1"}, id="redirect"),
    # More than the engine reads (1 MiB).
    pytest.param(
        lambda _: {"raw_body": b'{"result": "' + b"x" * (2 << 20) + b'"}'}, id="2MiB-answer"
    ),
]


@pytest.mark.parametrize("fault", MALFORMED)
def test_policy_malformed_answer_denies(
    with_opa: tuple[LocalStack, OpaStandIn, Clients],
    opa_case: str,
    fault: Callable[[OpaStandIn], dict[str, Any]],
) -> None:
    stack, opa, client_for = with_opa
    with opa.faults(**fault(opa)):
        result = exchange(stack, client_for, opa_case)
    assert_policy_refusal(result)


def test_policy_engine_down_denies(
    keystore: KeyStore, tmp_path: Path, postgres_server_dsn: str
) -> None:
    """OPA stopped: the connection is refused; the exchange is refused, readiness says so."""
    with opa_stack(keystore, tmp_path, postgres_server_dsn) as (stack, opa):
        client_for, close = make_clients(stack, keystore)
        try:
            case_id = register_case(client_for)
            activate_case(client_for, case_id)
            opa.stop()
            result = exchange(stack, client_for, case_id)
            assert_policy_refusal(result)
            ready = httpx.get(stack.broker_url + "/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["policy_engine"] == "unavailable"
            assert_refused(ready, status=503, problem=False)
        finally:
            close()


# --- the replay cache ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_down(
    keystore: KeyStore, tmp_path_factory: pytest.TempPathFactory, postgres_server_dsn: str
) -> Iterator[LocalStack]:
    """A broker whose Redis is a closed port: nothing listens on 127.0.0.1:1."""
    workdir = tmp_path_factory.mktemp("security-redis-down")
    base = {
        **stack_base(workdir, keystore, postgres_server_dsn),
        "storage_backend": "sqlite",
        "cache_backend": "redis",
        "redis_url": "redis://127.0.0.1:1/0",
    }
    with start_local_stack(base=base) as running:
        yield running


def test_redis_down_issues_no_token(redis_down: LocalStack, keystore: KeyStore) -> None:
    """The assertion's jti cannot be stored, so it could be replayed: no token."""
    forge = StackForge(
        keystore=keystore,
        now=redis_down.services.clock.now(),
        issuer=redis_down.settings.issuer,
    )
    result = request_token(redis_down, GEMEENTE, forge.assertion())
    assert_refused(result.response, status=503, code="temporarily_unavailable", problem=False)
    assert "access_token" not in result.response.text
    result.assert_logged("temporarily_unavailable", kind="security_event", principal=GEMEENTE)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/convenant"), ("POST", "/v1/exchanges"), ("GET", "/v1/cases/case_x")],
)
def test_redis_down_answers_no_api_call(
    redis_down: LocalStack, keystore: KeyStore, method: str, path: str
) -> None:
    """A token from before the outage, a valid proof: the proof's jti cannot be stored."""
    dpop = DpopKey()
    token = signed_access_token(redis_down, keystore, GEMEENTE, claims={"cnf": {"jkt": dpop.jkt}})
    url = redis_down.settings.issuer + path
    headers = dpop_headers(dpop, token, method=method, url=url, nonce=fetch_nonce(redis_down))
    body = exchange_body("case_x") if method == "POST" else None
    result = attempt(
        redis_down,
        lambda trace: httpx.request(method, url, headers={**trace, **headers}, json=body),
    )
    assert_refused(result.response, status=503)
    assert "convenant-woonoverlast" not in result.response.text
    # The record names no partner: the request was refused before it was admitted.
    result.assert_logged(result.response.json()["code"], kind="security_event")


def test_readiness_reports_the_cache_outage_without_detail(redis_down: LocalStack) -> None:
    ready = httpx.get(redis_down.broker_url + "/readyz")
    assert_refused(ready, status=503, problem=False, also=("127.0.0.1:1", "Connection", "Errno"))
    assert ready.json() == {
        "status": "not_ready",
        "checks": {
            "policy_engine": "ok",
            "audit_store": "ok",
            "replay_cache": "unavailable",
            "case_register": "ok",
        },
    }


# --- the audit store: failing -------------------------------------------------------------


def _warm(client_for: Clients, *principals: str) -> None:
    """Tokens and nonces first: a token request's own refusals need the log too."""
    for principal in principals:
        client_for(principal).token()


def test_audit_store_failing_discloses_nothing_for_an_exchange(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    """Log before disclose: the answer waits for the entry, and the entry cannot be made."""
    _warm(client_for, GEMEENTE)
    size = log_size(stack)
    with audit_store_refusing_writes(stack):
        result = exchange(stack, client_for, active_case)
    assert_refused(result.response, status=503, code="audit_unavailable")
    assert_nothing_disclosed(result)
    assert log_size(stack) == size, "nothing may be in the log while it refuses writes"
    # Healthy again: the same exchange is answered and logged, and the log still verifies.
    assert exchange(stack, client_for, active_case).response.status_code == 200
    verified = client_for(FG).get("/v1/audit/verification")
    assert verified.status_code == 200 and verified.json()["ok"] is True, verified.text


REFUSALS_UNDER_A_FAILING_LOG = [
    # A refusal by the policy: logged as a refusal, so it waits for the log too.
    pytest.param(GEMEENTE, "purpose", id="policy-refusal"),
    # Another partner's case: the 404 is a refusal to log.
    pytest.param(WOONGOED, "foreign", id="bola"),
    # A forged access token at the API edge.
    pytest.param(None, "forged-token", id="bad-token"),
    # A forged client assertion at the token endpoint.
    pytest.param(None, "forged-assertion", id="bad-assertion"),
]


@pytest.mark.parametrize(("principal", "kind"), REFUSALS_UNDER_A_FAILING_LOG)
def test_audit_store_failing_turns_refusals_into_503(
    stack: LocalStack,
    client_for: Clients,
    keystore: KeyStore,
    active_case: str,
    principal: str | None,
    kind: str,
) -> None:
    """A refusal that cannot be logged is still a refusal, but not an ordinary-looking one."""
    _warm(client_for, GEMEENTE, WOONGOED)
    forge = StackForge(
        keystore=keystore, now=stack.services.clock.now(), issuer=stack.settings.issuer
    )
    nonce = fetch_nonce(stack)
    size = log_size(stack)
    with audit_store_refusing_writes(stack):
        if kind == "forged-assertion":
            forged = forge.assertion(key=forge.key(WOONGOED))  # the wrong key for the gemeente
            result = request_token(stack, GEMEENTE, forged, nonce=nonce)
        elif kind == "forged-token":
            dpop = DpopKey()
            token = signed_access_token(
                stack,
                keystore,
                GEMEENTE,
                claims={"cnf": {"jkt": dpop.jkt}, "scope": "audit:read"},
                key=keystore.signing_key(GEMEENTE),
            )
            url = stack.settings.issuer + "/v1/audit/export"
            headers = dpop_headers(dpop, token, method="GET", url=url, nonce=nonce)
            result = attempt(stack, lambda trace: httpx.get(url, headers={**trace, **headers}))
        else:
            assert principal is not None
            override = {"purpose": "opsporing"} if kind == "purpose" else {}
            body = exchange_body(active_case, **override)
            client = client_for(principal)
            result = attempt(
                stack, lambda trace: client.post("/v1/exchanges", json=body, headers=trace)
            )
    oauth = kind == "forged-assertion"
    code = "temporarily_unavailable" if oauth else "audit_unavailable"
    assert_refused(result.response, status=503, code=code, problem=not oauth)
    assert_nothing_disclosed(result)
    assert log_size(stack) == size


# --- the audit store: down ---------------------------------------------------------------------


@contextmanager
def own_database() -> Iterator[str]:
    """A throw-away PostgreSQL database for one store (its name), dropped afterwards."""
    with throwaway_database("kbsec_audit") as dsn:
        yield dsn.rsplit("/", 1)[1]


@contextmanager
def database_down(name: str) -> Iterator[None]:
    """No connection to `name`: the open ones are cut, new ones refused, until the block ends."""
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
    try:
        yield
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')


@pytest.fixture(scope="module")
def audit_db(
    keystore: KeyStore, tmp_path_factory: pytest.TempPathFactory, postgres_server_dsn: str
) -> Iterator[tuple[LocalStack, str, Clients]]:
    """A production-like broker whose audit store has a database of its own, to take down."""
    workdir = tmp_path_factory.mktemp("security-audit-down")
    base = {
        **stack_base(workdir, keystore, postgres_server_dsn),
        "storage_backend": "postgres",
        "cache_backend": "memory",
    }
    with own_database() as name:
        dsn = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
        with start_local_stack(base=base, audit_store=PostgresAuditStore(dsn)) as running:
            make, close = make_clients(running, keystore)
            yield running, name, make
            close()


def test_audit_store_down_discloses_nothing(
    audit_db: tuple[LocalStack, str, Clients], keystore: KeyStore
) -> None:
    stack, name, client_for = audit_db
    case_id = register_case(client_for)
    activate_case(client_for, case_id)
    _warm(client_for, GEMEENTE, WOONGOED)
    with database_down(name):
        answer = client_for(GEMEENTE).post("/v1/exchanges", json=exchange_body(case_id))
        refused = client_for(WOONGOED).get(f"/v1/cases/{case_id}")
        forged = httpx.get(
            stack.settings.issuer + "/v1/convenant", headers={"Authorization": "DPoP a.b.c"}
        )
    assert_refused(answer, status=503, code="audit_unavailable")
    for field in POLICE_FIELDS:
        assert field not in answer.text
    # Refusals that cannot be logged are 503s too, never a bare 404 or 401.
    assert_refused(refused, status=503, code="audit_unavailable")
    assert_refused(forged, status=503, code="audit_unavailable")
    # Back up: the store reconnects by itself, and the same exchange is answered.
    again = client_for(GEMEENTE).post("/v1/exchanges", json=exchange_body(case_id))
    assert again.status_code == 200, again.text


def test_audit_entries_written_before_the_outage_survive_it(
    audit_db: tuple[LocalStack, str, Clients],
) -> None:
    """Reading the log while it is down is a 503; afterwards it verifies as before."""
    _, name, client_for = audit_db
    _warm(client_for, FG)
    before = client_for(FG).get("/v1/audit/verification").json()
    with database_down(name):
        unavailable = client_for(FG).get("/v1/audit/checkpoint")
    assert_refused(unavailable, status=503)
    after = client_for(FG).get("/v1/audit/verification")
    assert after.status_code == 200, after.text
    assert after.json()["ok"] is True
    assert after.json()["size"] >= before["size"]


def test_whole_database_down_fails_closed_and_recovers(
    keystore: KeyStore, tmp_path: Path, postgres_server_dsn: str
) -> None:
    """Register and log in one database, taken down: 503 throughout, service after."""
    with own_database() as name:
        base = {
            **stack_base(tmp_path, keystore, postgres_server_dsn),
            "storage_backend": "postgres",
            "cache_backend": "memory",
            "postgres_dsn": POSTGRES_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name,
        }
        with start_local_stack(base=base) as stack:
            client_for, close = make_clients(stack, keystore)
            try:
                case_id = register_case(client_for)
                activate_case(client_for, case_id)
                _warm(client_for, GEMEENTE, WOONGOED)
                with database_down(name):
                    answer = client_for(GEMEENTE).post("/v1/exchanges", json=exchange_body(case_id))
                    foreign = client_for(WOONGOED).get(f"/v1/cases/{case_id}")
                assert_refused(answer, status=503)
                assert_refused(foreign, status=503)
                for field in POLICE_FIELDS:
                    assert field not in answer.text
                again = client_for(GEMEENTE).post("/v1/exchanges", json=exchange_body(case_id))
                assert again.status_code == 200, again.text
            finally:
                close()
