"""The abuse suite's shared parts: a running network, an attacker's toolbox, three checks.

Every test here attacks the broker from outside, over real HTTP, and then
checks the same three things (issue 5, point 7):

1. the answer is a refusal, a 4xx or a 503, never a 500 (`assert_refused`);
2. nothing is disclosed: no stack trace, no internal module name, none of
   the fixture people's names or birth dates, no value from the adapters'
   systems (`assert_nothing_leaks`);
3. the audit log holds the refusal (`Attempt.assert_logged`).

Which audit entries a request appended is read through `Attempt`: the log's
size is taken before the request, which carries a fresh W3C `traceparent`,
and the entries after that cursor carrying the same trace id are the
request's. That holds however many entries an exchange writes (an intent
and a closing entry, or one refusal) and whatever else the broker logs.

`stack` runs once per module on the embedded backends (SQLite, in-process
cache) and on production storage (the real PostgreSQL and Redis); fault
tests build their own stacks with a broken dependency.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest

from adapters.sdk.client import BrokerClient
from broker.audit.store import AuditQuery
from broker.keys import KeyStore, SigningKey, generate_signing_key
from broker.settings import PROJECT_ROOT, Settings
from broker.stack import LocalStack, start_local_stack
from tests.auth.forgeries import VICTIM, Forge
from tests.auth.helpers import JWT_BEARER, REMOVE, assertion_claims, json_segment, make_assertion
from tests.e2e.conftest import (
    BUURTTEAM,
    DE_LINGE,
    FG,
    GEMEENTE,
    GGD,
    POLITIE,
    WOONGOED,
    case_body,
)

__all__ = [
    "BUURTTEAM",
    "DE_LINGE",
    "FG",
    "GEMEENTE",
    "GGD",
    "POLITIE",
    "WOONGOED",
    "Attempt",
    "Clients",
    "DpopKey",
    "StackForge",
    "access_claims",
    "assert_nothing_leaks",
    "assert_refused",
    "attempt",
    "audit_store_refusing_writes",
    "bearer",
    "case_body",
    "dpop_headers",
    "exchange_body",
    "fetch_nonce",
    "request_token",
    "sign_compact",
    "signed_access_token",
    "token_form",
    "traceparent",
]

Clients = Callable[[str], BrokerClient]

# --- what must never appear in an answer to an attacker ------------------------------

# A stack trace or its pieces.
TRACE_MARKERS = ("Traceback", 'File "', "site-packages", str(PROJECT_ROOT))
# Internal module and library names: they tell an attacker what to aim at.
# Module paths are matched as words, so that "ketenbroker.nl" (the problem
# type URLs) is not mistaken for the module `broker`.
INTERNAL_MODULES = re.compile(r"\b(?:broker|adapters|tests)\.[a-z_]")
INTERNAL_NAMES = (
    "sqlite",
    "psycopg",
    "regopy",
    "pydantic",
    "starlette",
    "fastapi",
    "uvicorn",
    "opa_client",
    "redis.",
    "RedisError",
    "OperationalError",
)
# The fixture people: names and birth dates in every form the fixtures use.
FIXTURE_PEOPLE = (
    ("Marco", "de Wit", "1979-03-14", "14-03-1979"),
    ("Fatima", "el Amrani", "1985-07-02", "02-07-1985"),
    ("Joop", "Verbeek", "1952-11-30", "30-11-1952"),
    ("Sanne", "Bakker", "1990-05-21", "21-05-1990"),
    ("Ahmet", "Yilmaz", "1968-09-09", "09-09-1968"),
)
PERSONAL_DATA = tuple(value for person in FIXTURE_PEOPLE for value in person)

ADAPTER_DATA = sorted((PROJECT_ROOT / "adapters").glob("*/data/*.json"))
CONVENANT_FILE = PROJECT_ROOT / "convenants" / "lekstroom.yaml"


def _string_leaves(document: Any) -> Iterator[str]:
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for value in document.values():
            yield from _string_leaves(value)
    elif isinstance(document, list):
        for value in document:
            yield from _string_leaves(value)


def _adapter_values() -> frozenset[str]:
    """Values from the partners' own systems: descriptions, record numbers, street names.

    Eight characters or more with a letter in them, so that a refusal's
    status code or a date cannot match by accident; values that the
    convenant itself publishes to every partner (place and partner names)
    are not secrets and are left out.
    """
    public = CONVENANT_FILE.read_text(encoding="utf-8")
    values = set()
    for path in ADAPTER_DATA:
        for value in _string_leaves(json.loads(path.read_text(encoding="utf-8"))):
            if len(value) >= 8 and any(c.isalpha() for c in value) and value not in public:
                values.add(value)
    return frozenset(values)


ADAPTER_VALUES = _adapter_values()


def assert_nothing_leaks(text: str, *, also: Iterable[str] = ()) -> None:
    """No stack trace, internal name, fixture person or adapter value in `text`.

    `also` adds what this attack sent and must not see echoed (a token, a
    secret, a payload).
    """
    for marker in TRACE_MARKERS:
        assert marker not in text, f"stack trace marker {marker!r} in the answer"
    module = INTERNAL_MODULES.search(text)
    assert module is None, f"internal module path {module.group(0)!r} in the answer"
    for name in INTERNAL_NAMES:
        assert name not in text, f"internal name {name!r} in the answer"
    for value in PERSONAL_DATA:
        assert value not in text, f"fixture personal data {value!r} in the answer"
    for value in ADAPTER_VALUES:
        assert value not in text, f"a value from an adapter's system in the answer: {value!r}"
    for value in also:
        assert value not in text, f"the answer echoes {value[:40]!r}"


PROBLEM_MEDIA_TYPE = "application/problem+json"


def assert_refused(
    response: httpx.Response,
    *,
    status: int | Iterable[int],
    code: str | None = None,
    problem: bool = True,
    also: Iterable[str] = (),
) -> dict[str, Any]:
    """A refusal: the expected status (never 500), the expected code, nothing leaked.

    `problem`: an RFC 9457 problem document (the API); False for the OAuth
    endpoint's RFC 6749 error JSON (then `code` is its `error`) and for
    HTML pages.
    """
    statuses = {status} if isinstance(status, int) else set(status)
    assert response.status_code != 500, f"a 500 is never a refusal: {response.text[:500]}"
    assert response.status_code in statuses, (
        f"expected {sorted(statuses)}, got {response.status_code}: {response.text[:500]}"
    )
    assert 400 <= response.status_code < 500 or response.status_code == 503
    assert_nothing_leaks(response.text, also=also)
    content_type = response.headers.get("content-type", "")
    if not problem:
        if code is not None:
            assert content_type.startswith("application/json"), content_type
            assert response.json()["error"] == code, response.text
        return {}
    assert content_type.startswith(PROBLEM_MEDIA_TYPE), content_type
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body), body
    assert body["status"] == response.status_code
    assert "data" not in body, "a refusal carries no data"
    if code is not None:
        assert body["code"] == code, body
    return body


# --- which audit entries one request appended ------------------------------------------


def traceparent() -> tuple[str, str]:
    """A fresh W3C traceparent header value and its trace id."""
    trace_id = secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01", trace_id


def log_size(stack: LocalStack) -> int:
    return stack.services.audit.checkpoint().size


def entries_after(stack: LocalStack, size: int) -> list[dict[str, Any]]:
    """Every entry appended since the log had `size` entries (paging with the cursor)."""
    found: list[dict[str, Any]] = []
    cursor = size - 1
    while page := stack.services.audit.entries(AuditQuery(after_index=cursor, limit=500)):
        found.extend(stored.entry for stored in page)
        cursor = page[-1].index
    return found


DISCLOSING = frozenset({"permit", "partial"})


@dataclass
class Attempt:
    """One attack request: its answer, its trace id, and what the audit log gained."""

    response: httpx.Response
    trace_id: str
    appended: list[dict[str, Any]] = field(default_factory=list)

    @property
    def records(self) -> list[dict[str, Any]]:
        """The entries this request appended (those carrying its trace id)."""
        return [e for e in self.appended if e.get("trace_id") == self.trace_id]

    def codes(self) -> set[str]:
        return {
            reason.get("code", "")
            for entry in self.records
            if entry.get("decision") == "deny"
            for reason in entry.get("reasons", [])
        }

    def assert_logged(
        self,
        code: str,
        *,
        kind: str | None = None,
        principal: str | object | None = REMOVE,
    ) -> dict[str, Any]:
        """At least one refusal record naming `code`, and no disclosure, for this request.

        Counts are not asserted: an exchange may write an intent and a
        closing entry, or one refusal. With `kind="security_event"` the edge
        wrote exactly one record, which every refusal at the edge does.
        `principal` (when given) is who the record says asked.
        """
        records = self.records
        assert records, f"no audit record carries trace id {self.trace_id}: {self.appended}"
        disclosed = [e for e in self.appended if e.get("decision") in DISCLOSING]
        assert not disclosed, f"a refused request disclosed something: {disclosed}"
        assert code in self.codes(), f"expected a refusal with code {code!r}, got {records}"
        matching = [
            e
            for e in records
            if e.get("decision") == "deny"
            and code in {r.get("code") for r in e.get("reasons", [])}
            and (kind is None or e.get("kind") == kind)
        ]
        assert matching, f"expected a {kind or 'refusal'} record with {code!r}, got {records}"
        if kind == "security_event":
            events = [e for e in records if e.get("kind") == "security_event"]
            assert len(events) == 1, f"expected one security_event, got {events}"
        record = matching[0]
        if principal is not REMOVE:
            assert record["requester"]["partner"] == principal, record
        return record

    def assert_not_logged(self) -> None:
        """The broker could not (or need not) log: then it must not have written anything."""
        assert not self.records, self.records


def attempt(stack: LocalStack, send: Callable[[dict[str, str]], httpx.Response]) -> Attempt:
    """Call `send(headers)` with a fresh traceparent; collect what the log gained meanwhile."""
    before = log_size(stack)
    header, trace_id = traceparent()
    response = send({"traceparent": header})
    return Attempt(response=response, trace_id=trace_id, appended=entries_after(stack, before))


# --- requests -----------------------------------------------------------------------


def exchange_body(case_id: str, **overrides: Any) -> dict[str, Any]:
    """An exchange request as the casemanager makes it, with an acting user of its own.

    A fresh user per request keeps per-user rate limits (issue 5, point 6)
    from refusing an attack before the check under test sees it.
    """
    body: dict[str, Any] = {
        "case": case_id,
        "subject": "og-1",
        "query": "politie.meldingen",
        "purpose": "aanpak_woonoverlast",
        "period": {"from": "2025-01-01", "to": "2026-11-01"},
        "on_behalf_of": {"user": f"sec.{secrets.token_hex(4)}", "function": "casusregisseur"},
    }
    body.update(overrides)
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- forging tokens -----------------------------------------------------------------


def sign_compact(header: dict[str, Any], payload: dict[str, Any], key: Any, alg: str) -> str:
    """A compact JWS signed by hand: no library adds or checks a header member.

    `payload` goes through `json.dumps` with NaN allowed, so a test can send
    what a lax JSON encoder would.
    """
    signing_input = f"{json_segment(header)}.{_payload_segment(payload)}"
    algorithm = jwt.get_algorithm_by_name(alg)
    signature = algorithm.sign(signing_input.encode("ascii"), algorithm.prepare_key(key))
    return f"{signing_input}.{jwt.utils.base64url_encode(signature).decode('ascii')}"


def _payload_segment(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return jwt.utils.base64url_encode(raw).decode("ascii")


def access_claims(
    stack: LocalStack, principal: str, *, now: datetime | None = None
) -> dict[str, Any]:
    """The claims the broker puts in an access token for `principal` (RFC 9068)."""
    convenant = stack.services.convenant
    partner = convenant.partner(principal)
    issued_at = int((now or datetime.now(UTC)).timestamp())
    claims: dict[str, Any] = {
        "iss": stack.settings.issuer,
        "sub": principal,
        "aud": stack.settings.issuer,
        "client_id": principal,
        "role": convenant.role_of(principal),
        "scope": " ".join(sorted(convenant.scopes_for(principal))),
        "iat": issued_at,
        "exp": issued_at + 300,
        "jti": secrets.token_urlsafe(16),
    }
    if partner is not None and partner.function is not None:
        claims["function"] = partner.function
    return claims


def signed_access_token(
    stack: LocalStack,
    keystore: KeyStore,
    principal: str = GEMEENTE,
    *,
    claims: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
    key: SigningKey | None = None,
) -> str:
    """An access token signed with the broker's own key (or `key`), claims overridden.

    With the broker's key every defect below is the only thing wrong with
    the token: a refusal is the check under test working, not a bad
    signature. A value of REMOVE deletes the member.
    """
    signer = key or keystore.signing_key("broker")
    header: dict[str, Any] = {"alg": signer.alg, "typ": "at+jwt", "kid": signer.kid}
    payload = access_claims(stack, principal)
    for target, overrides in ((header, headers), (payload, claims)):
        for name, value in (overrides or {}).items():
            if value is REMOVE:
                target.pop(name, None)
            else:
                target[name] = value
    return sign_compact(header, payload, signer.private_key, signer.alg)


@dataclass(frozen=True)
class StackForge(Forge):
    """tests/auth's Forge, aimed at a running stack's issuer instead of the fixed one."""

    issuer: str = ""

    def claims(self, client_id: str = VICTIM) -> dict[str, object]:
        return assertion_claims(client_id=client_id, audience=self.issuer, now=self.now)

    def assertion(
        self,
        *,
        key: SigningKey | None = None,
        client_id: str = VICTIM,
        audience: str | list[str] | None = None,
        lifetime_seconds: int = 60,
        claims: Any = None,
        headers: Any = None,
    ) -> str:
        return make_assertion(
            key or self.key(client_id),
            client_id=client_id,
            audience=self.issuer if audience is None else audience,
            now=self.now,
            lifetime_seconds=lifetime_seconds,
            claims=claims,
            headers=headers,
        )


# --- DPoP (RFC 9449): the proofs a partner's system signs ----------------------------------

DPOP_NONCE_HEADER = "DPoP-Nonce"


def jwk_thumbprint_of(jwk: dict[str, str]) -> str:
    """RFC 7638 SHA-256 thumbprint: the required members, sorted, no whitespace."""
    required = {"OKP": ("crv", "kty", "x"), "EC": ("crv", "kty", "x", "y")}[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in required}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def token_hash(token: str) -> str:
    """RFC 9449 §4.2 `ath`: base64url SHA-256 of the access token's ASCII."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class DpopKey:
    """A client's DPoP key pair and the proofs it signs (RFC 9449 §4.2), bent on request."""

    key: SigningKey = field(default_factory=generate_signing_key)

    @property
    def jwk(self) -> dict[str, str]:
        return dict(self.key.public_jwk())

    @property
    def jkt(self) -> str:
        return jwk_thumbprint_of(self.jwk)

    def proof(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        nonce: str | None = None,
        claims: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        signer: SigningKey | None = None,
    ) -> str:
        """A proof for `method` at `url`; `claims`/`headers` override (REMOVE deletes)."""
        public = {k: v for k, v in self.jwk.items() if k not in {"kid", "alg", "use"}}
        header: dict[str, Any] = {"typ": "dpop+jwt", "alg": self.key.alg, "jwk": public}
        payload: dict[str, Any] = {
            "jti": secrets.token_urlsafe(18),
            "htm": method,
            "htu": url,
            "iat": int(datetime.now(UTC).timestamp()),
        }
        if token is not None:
            payload["ath"] = token_hash(token)
        if nonce is not None:
            payload["nonce"] = nonce
        for target, overrides in ((header, headers), (payload, claims)):
            for name, value in (overrides or {}).items():
                if value is REMOVE:
                    target.pop(name, None)
                else:
                    target[name] = value
        # Signed with the key's own algorithm whatever the header claims, so a
        # header naming another alg is a header defect, not a signing failure.
        key = signer or self.key
        return sign_compact(header, payload, key.private_key, key.alg)


def fetch_nonce(stack: LocalStack) -> str:
    """A live server nonce: every answer of the token endpoint carries one (RFC 9449 §8)."""
    answer = httpx.post(stack.settings.issuer + "/oauth/token", data={})
    nonce = answer.headers.get(DPOP_NONCE_HEADER)
    assert nonce, f"expected a {DPOP_NONCE_HEADER} header from the token endpoint: {answer.headers}"
    return nonce


def dpop_headers(dpop: DpopKey, token: str, *, method: str, url: str, nonce: str) -> dict[str, str]:
    """Authorization and DPoP for one API request with a token bound to `dpop`."""
    return {
        "Authorization": f"DPoP {token}",
        "DPoP": dpop.proof(method, url, token=token, nonce=nonce),
    }


# --- the token endpoint ---------------------------------------------------------------


def token_form(client_id: str, assertion: str, *, scope: str | None = None) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    }
    if scope is not None:
        form["scope"] = scope
    return form


def request_token(
    stack: LocalStack,
    client_id: str,
    assertion: str,
    *,
    scope: str | None = None,
    nonce: str | None = None,
) -> Attempt:
    """A token request as a partner's system makes it: with a DPoP proof and a live nonce."""
    endpoint = stack.settings.issuer + "/oauth/token"
    proof = DpopKey().proof("POST", endpoint, nonce=nonce or fetch_nonce(stack))
    form = token_form(client_id, assertion, scope=scope)
    return attempt(
        stack, lambda trace: httpx.post(endpoint, data=form, headers={**trace, "DPoP": proof})
    )


# --- the running network --------------------------------------------------------------

BACKENDS = {
    "embedded": {"storage_backend": "sqlite", "cache_backend": "memory"},
    "production": {"storage_backend": "postgres", "cache_backend": "redis"},
}


def generous_rate_limits() -> dict[str, Any]:
    """Every rate limit at its ceiling: this suite attacks other checks (issue 5, point 6).

    A module sends hundreds of requests a minute as one partner; a 429
    would hide the check under test. tests/ratelimit tests the limits. Read
    from the settings model, so the suite runs with or without the limiter.
    """
    field = Settings.model_fields.get("rate_limits")
    model = getattr(field, "annotation", None)
    fields = getattr(model, "model_fields", None)
    if model is None or not isinstance(fields, dict):
        return {}
    limits = {}
    for name, info in fields.items():
        ceiling = next(
            (m.le for m in info.metadata if isinstance(getattr(m, "le", None), int)), None
        )
        if ceiling is not None:
            limits[name] = ceiling
    try:
        model.model_validate(limits)
    except ValueError:
        return {}  # limits that must differ from each other: leave the defaults
    return {"rate_limits": limits}


def stack_base(workdir: Path, keystore: KeyStore, postgres_dsn: str) -> dict[str, Any]:
    return {
        "keys_dir": keystore.root,
        "policy_engine": "embedded",
        "sqlite_path": workdir / "ketenbroker.sqlite3",
        "postgres_dsn": postgres_dsn,
        "redis_namespace": f"kbsec:{secrets.token_hex(6)}",
        **generous_rate_limits(),
    }


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def stack(
    request: pytest.FixtureRequest,
    keystore: KeyStore,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server_dsn: str,
) -> Iterator[LocalStack]:
    workdir = tmp_path_factory.mktemp(f"security-{request.param}")
    base = {**stack_base(workdir, keystore, postgres_server_dsn), **BACKENDS[request.param]}
    with start_local_stack(base=base) as running:
        yield running


def make_clients(stack: LocalStack, keystore: KeyStore) -> tuple[Clients, Callable[[], None]]:
    clients: dict[tuple[str, str | None], BrokerClient] = {}

    def make(principal: str, scopes: str | None = None) -> BrokerClient:
        if (principal, scopes) not in clients:
            clients[principal, scopes] = BrokerClient(
                base_url=stack.broker_url,
                client_id=principal,
                signing_key=keystore.signing_key(principal),
                scopes=scopes,
            )
        return clients[principal, scopes]

    def close() -> None:
        for client in clients.values():
            client.close()

    return make, close


@pytest.fixture(scope="module")
def client_for(stack: LocalStack, keystore: KeyStore) -> Iterator[Clients]:
    make, close = make_clients(stack, keystore)
    yield make
    close()


@pytest.fixture
def forge(stack: LocalStack, keystore: KeyStore) -> StackForge:
    return StackForge(keystore=keystore, now=datetime.now(UTC), issuer=stack.settings.issuer)


def register_case(client_for: Clients, **overrides: Any) -> str:
    created = client_for(GEMEENTE).post("/v1/cases", json=case_body(**overrides))
    assert created.status_code == 201, created.text
    case_id: str = created.json()["id"]
    return case_id


def activate_case(client_for: Clients, case_id: str) -> None:
    consent = client_for(DE_LINGE).post(
        f"/v1/cases/{case_id}/consent", json={"decision": "granted"}
    )
    assert consent.status_code == 200, consent.text
    moved = client_for(GEMEENTE).post(
        f"/v1/cases/{case_id}/transitions", json={"to": "in_behandeling"}
    )
    assert moved.status_code == 200, moved.text


@pytest.fixture
def active_case(client_for: Clients) -> str:
    """A complex case with consent granted and intake done: exchanges may flow."""
    case_id = register_case(client_for)
    activate_case(client_for, case_id)
    return case_id


# --- a real audit store that refuses to write --------------------------------------------


class audit_store_refusing_writes:  # noqa: N801  # reads as a sentence: `with audit_store_refusing_writes(...)`
    """The stack's real audit table refuses every insert while the block runs.

    SQLite: a trigger that aborts; PostgreSQL: a CHECK constraint that no
    row passes (NOT VALID, so existing rows are not re-checked). Both are
    what a full disk or a revoked grant looks like to the broker: the write
    fails inside the database.
    """

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def __enter__(self) -> None:
        settings = self.stack.settings
        if settings.storage_backend == "sqlite":
            with sqlite3.connect(settings.sqlite_path) as conn:
                conn.execute(
                    "CREATE TRIGGER security_refuse_all BEFORE INSERT ON audit_entries"
                    " BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
                )
        else:
            with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
                conn.execute(
                    "ALTER TABLE audit_entries"
                    " ADD CONSTRAINT security_refuse_all CHECK (false) NOT VALID"
                )

    def __exit__(self, *exc: object) -> None:
        settings = self.stack.settings
        if settings.storage_backend == "sqlite":
            with sqlite3.connect(settings.sqlite_path) as conn:
                conn.execute("DROP TRIGGER security_refuse_all")
        else:
            with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
                conn.execute("ALTER TABLE audit_entries DROP CONSTRAINT security_refuse_all")
