"""Fuzzing every operation of the broker's own OpenAPI document (issue 5, point 8).

What it does: starts one embedded stack (broker plus every adapter on
loopback; SQLite, in-process cache, regopy), loads `/openapi.json` from it
with schemathesis, and for every operation in that document has Hypothesis
generate valid and invalid requests (schemathesis' positive and negative
modes), sent as each caller the operation has: nobody, a partner
(`gemeente-lekstroom`, the casusregisseur) and the DPO (`fg-lekstroom`).
Partner and DPO calls go through the project's own `BrokerClient`, so the
test authenticates as the client does (DPoP proofs, or Bearer where the
broker issues bearer tokens) and never crafts credentials itself; the DPO's
pages get a session through the login code `ketenbroker dpo login-code`
prints. Every answer must hold:

* no server error: nothing 5xx but a 503 whose `code` (at the token
  endpoint: `error`) says which backend is unavailable;
* the JSON API's errors are RFC 9457 problem documents with a snake_case
  `code` (contract.md, General), the token endpoint's are RFC 6749 §5.2
  JSON, and the DPO's pages answer HTML or a redirect, with their security
  headers (broker/api/routes/dpo.py);
* a response whose status the document declares has a declared media type
  and conforms to the declared schema (schemathesis'
  `response_schema_conformance`, `content_type_conformance`,
  `response_headers_conformance`);
* the client's credentials are never refused (no 401 for partner or DPO:
  one would mean client and broker disagree on a DPoP proof's `htu` for an
  odd path, a nonce or the clock), and a DPO session is never sent back to
  the login page.

Purely random ids end at a 404; to reach further, some requests name a real
case (a fresh one per test), and generated cases and exchanges get partner
ids, subjects and exchange types the convenant knows.

What it does not: run the production backends (the e2e tests run every
route on all three; fuzzing the same edge three times triples the time and
reaches no new parser), follow links between operations (stateful runs), or
measure load. Undeclared status codes are not failed request by request;
`test_openapi_declares_the_answers_the_broker_gives` states that gap once.

The bounded run (`make test`) sends BOUNDED_EXAMPLES cases per operation
and caller with a fixed seed, so it sees the same requests every run and a
strict xfail stays strict. `KETENBROKER_FUZZ_EXAMPLES=1000` makes the long,
randomised run (docs/fuzzing.md).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode

from adapters.sdk.client import BrokerClient
from broker.api.problems import PROBLEM_MEDIA_TYPE
from broker.convenant import Convenant
from broker.convenant.model import PartnerRole
from broker.dpo.session import SECURITY_HEADERS, SESSION_COOKIE, SESSION_PATH
from broker.keys import KeyStore
from broker.ratelimit.policy import MAX_LIMIT, RateLimits
from broker.stack import LocalStack, start_local_stack
from tests.e2e.conftest import DE_LINGE, FG, GEMEENTE, case_body

pytestmark = pytest.mark.e2e

# The bounded run of `make test`: 30 cases per operation and caller, about
# 2,200 requests, keep the module within 25 to 40 s on two cores (measured
# with other test runs beside it). The long run raises it (docs/fuzzing.md).
BOUNDED_EXAMPLES = 30
EXAMPLES = int(os.environ.get("KETENBROKER_FUZZ_EXAMPLES") or BOUNDED_EXAMPLES)
# The bounded run replays the same requests every time (a strict xfail must
# not pass by luck); a longer run explores afresh each time.
DERANDOMIZE = EXAMPLES <= BOUNDED_EXAMPLES
# A DPO page session lives as long as its access token (at most 300 s,
# contract.md); long runs log in again this long before it ends.
DPO_SESSION_MARGIN_SECONDS = 20.0

# How each kind of operation answers errors, and who calls it.
API = "api"  # the JSON API: RFC 9457 problem documents
PUBLIC = "public"  # health and discovery: no token, the same problem documents
OAUTH = "oauth"  # the token endpoint: RFC 6749 §5.2 error JSON
HTML = "html"  # the DPO's pages: HTML, or a redirect to the login page

ANONYMOUS = "anonymous"  # no credentials (schemathesis may still invent an Authorization)
PARTNER = "partner"  # gemeente-lekstroom through BrokerClient: the regisseur, most scopes
DPO = "dpo"  # fg-lekstroom through BrokerClient: audit:read only
DPO_SESSION = "dpo-session"  # fg-lekstroom's dashboard session cookie

CALLERS = {
    API: (ANONYMOUS, PARTNER, DPO),
    PUBLIC: (ANONYMOUS,),
    # Client authentication is in the form itself: the fuzzer forges it.
    OAUTH: (ANONYMOUS,),
    # The pages read the session cookie, never the Authorization header.
    HTML: (ANONYMOUS, DPO_SESSION),
}

# Every operation of /openapi.json, by kind. test_every_operation_is_fuzzed
# fails when the document and this table part, so no new route goes unfuzzed.
OPERATIONS: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("POST", "/oauth/token"): OAUTH,
    ("GET", "/.well-known/oauth-authorization-server"): PUBLIC,
    ("GET", "/.well-known/jwks.json"): PUBLIC,
    ("GET", "/v1/convenant"): API,
    ("POST", "/v1/cases"): API,
    ("GET", "/v1/cases/{case_id}"): API,
    ("POST", "/v1/cases/{case_id}/partners"): API,
    ("POST", "/v1/cases/{case_id}/consent"): API,
    ("POST", "/v1/cases/{case_id}/transitions"): API,
    ("GET", "/v1/cases/{case_id}/status"): API,
    ("POST", "/v1/cases/{case_id}/events"): API,
    ("POST", "/v1/cases/{case_id}/urgency"): API,
    ("POST", "/v1/exchanges"): API,
    ("GET", "/v1/audit/checkpoint"): API,
    ("GET", "/v1/audit/entries"): API,
    ("GET", "/v1/audit/proofs/inclusion"): API,
    ("GET", "/v1/audit/proofs/consistency"): API,
    ("GET", "/v1/audit/export"): API,
    ("GET", "/v1/audit/decisions"): API,
    ("GET", "/v1/audit/verification"): API,
    ("GET", "/v1/audit/subjects/{ref}"): API,
    ("POST", "/v1/audit/entries/{index}/hold"): API,
    ("DELETE", "/v1/audit/entries/{index}/hold"): API,
    ("GET", "/v1/audit/holds"): API,
    ("GET", "/dpo/login"): HTML,
    ("POST", "/dpo/session"): HTML,
    ("POST", "/dpo/logout"): HTML,
    ("GET", "/dpo"): HTML,
    ("GET", "/dpo/search"): HTML,
    ("GET", "/dpo/access-report"): HTML,
    ("GET", "/dpo/access-report/letter"): HTML,
}

# Known failures: (method, path, caller) -> (what the run ends in, the bug).
# Strict: once the bug is fixed the run XPASSes and fails, so the marker goes.
KNOWN_FAILURES: dict[tuple[str, str, str], tuple[type[BaseException], str]] = {}


def _params() -> list[Any]:
    params = []
    for (method, path), kind in OPERATIONS.items():
        for caller in CALLERS[kind]:
            marks = []
            known = KNOWN_FAILURES.get((method, path, caller))
            if known is not None:
                raises, reason = known
                marks.append(pytest.mark.xfail(strict=True, raises=raises, reason=reason))
            params.append(
                pytest.param(method, path, caller, id=f"{method} {path} as {caller}", marks=marks)
            )
    return params


# --- the running broker and its callers ------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def hypothesis_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis caches constants and Unicode tables under ./.hypothesis; keep them in tmp.

    The example database is off (database=None below); this is the rest of
    its storage, so the run leaves no file in the work tree (style.md §26).
    """
    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    set_hypothesis_home_dir(None)


@pytest.fixture(scope="module")
def fuzz_stack(
    keystore: KeyStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """The embedded deployment only: the production backends add no input parsing."""
    workdir = tmp_path_factory.mktemp("fuzz-stack")
    base = {
        "keys_dir": keystore.root,
        "policy_engine": "embedded",
        "storage_backend": "sqlite",
        "cache_backend": "memory",
        "sqlite_path": workdir / "ketenbroker.sqlite3",
        # tests/ratelimit tests the limiter; here its 429s (problem documents
        # too) would only keep long runs from the routes behind it.
        "rate_limits": dict.fromkeys(RateLimits.model_fields, MAX_LIMIT),
    }
    with start_local_stack(base=base) as running:
        yield running


# schemathesis' own checks: only those about the document. Its not_a_server_error
# would fail the 503 the contract allows (our problem_documents decides), and
# status_code_conformance fails every undeclared status; see
# test_openapi_declares_the_answers_the_broker_gives instead.
SCHEMA_CHECKS = (
    "response_schema_conformance",
    "content_type_conformance",
    "response_headers_conformance",
)


@pytest.fixture(scope="module")
def api_schema(fuzz_stack: LocalStack) -> BaseSchema:
    """The document the broker itself serves: what partners build their clients from."""
    checks: dict[str, Any] = {"enabled": False}
    checks.update({name: {"enabled": True} for name in SCHEMA_CHECKS})
    return schemathesis.openapi.from_url(
        fuzz_stack.broker_url + "/openapi.json",
        config=schemathesis.Config.from_dict({"checks": checks}),
    )


@dataclass
class Callers:
    """One HTTP client per caller; the DPO's page session is renewed before it expires."""

    base_url: str
    anonymous: httpx.Client
    partner: BrokerClient
    dpo: BrokerClient
    _session_cookie: str = ""
    _session_renew_at: float = field(default=-1.0)

    def dpo_session_cookie(self) -> str:
        """`name=value` of a live DPO page session, logged in as the DPO does it."""
        if time.monotonic() >= self._session_renew_at:
            login = self.anonymous.post("/dpo/session", data={"access_token": self._login_code()})
            assert login.status_code == 303, f"expected the DPO's login to work, got {login}"
            value = login.cookies.get(SESSION_COOKIE)
            assert value, f"expected the {SESSION_COOKIE} cookie, got {login.headers!r}"
            self._session_cookie = f"{SESSION_COOKIE}={value}"
            # The session lives as long as the token behind it (Max-Age).
            lifetime = re.search(r"max-age=(\d+)", login.headers["set-cookie"], re.IGNORECASE)
            seconds = int(lifetime.group(1)) if lifetime else 0
            self._session_renew_at = time.monotonic() + seconds - DPO_SESSION_MARGIN_SECONDS
        return self._session_cookie

    def _login_code(self) -> str:
        """What `ketenbroker dpo login-code` prints: the token and a proof for the login."""
        scheme, token = self.dpo.authorization()
        if scheme != "DPoP":
            return token  # a bearer token is pasted alone
        proof = self.dpo.dpop_proof("POST", self.base_url + SESSION_PATH, access_token=token)
        return f"{token} {proof}"


@pytest.fixture(scope="module")
def callers(fuzz_stack: LocalStack, keystore: KeyStore) -> Iterator[Callers]:
    url = fuzz_stack.broker_url
    with (
        httpx.Client(base_url=url) as anonymous,
        BrokerClient(
            base_url=url, client_id=GEMEENTE, signing_key=keystore.signing_key(GEMEENTE)
        ) as partner,
        BrokerClient(base_url=url, client_id=FG, signing_key=keystore.signing_key(FG)) as dpo,
    ):
        yield Callers(base_url=url, anonymous=anonymous, partner=partner, dpo=dpo)


@dataclass(frozen=True)
class Known:
    """Values the broker knows, for requests that should get past the first lookup."""

    case: str  # a case in behandeling that the partner runs, with consent granted
    subjects: tuple[str, ...]
    partners: tuple[str, ...]
    dwelling_owners: tuple[str, ...]
    criteria: tuple[int, ...]
    exchanges: tuple[str, ...]
    purpose: str


@pytest.fixture
def known(callers: Callers, keystore: KeyStore, convenant: Convenant) -> Known:
    """A fresh case per test: one test's transitions never close another test's case."""
    body = case_body()
    created = callers.partner.post("/v1/cases", json=body)
    assert created.status_code == 201, created.text
    case_id: str = created.json()["id"]
    with BrokerClient(
        base_url=callers.base_url, client_id=DE_LINGE, signing_key=keystore.signing_key(DE_LINGE)
    ) as owner:
        consent = owner.post(f"/v1/cases/{case_id}/consent", json={"decision": "granted"})
    assert consent.status_code == 200, consent.text
    moved = callers.partner.post(f"/v1/cases/{case_id}/transitions", json={"to": "in_behandeling"})
    assert moved.status_code == 200, moved.text
    return Known(
        case=case_id,
        subjects=tuple(subject["ref"] for subject in body["subjects"]),
        partners=tuple(partner.id for partner in convenant.partners),
        dwelling_owners=(
            "particulier",
            *(p.id for p in convenant.partners if p.role == PartnerRole.corporatie),
        ),
        criteria=tuple(c.id for c in convenant.complex_case_criteria.items),
        exchanges=tuple(exchange.id for exchange in convenant.exchanges),
        purpose=convenant.purpose,
    )


# --- generating and sending cases -------------------------------------------------------


def _strategy(
    operation: APIOperation[Any, Any, Any, Any], known: Known
) -> st.SearchStrategy[Case[Any]]:
    """Valid and invalid requests; valid ones also about things that exist."""
    options = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    if "{case_id}" in operation.path:
        options.append(
            st.tuples(
                operation.as_strategy(
                    GenerationMode.POSITIVE, path_parameters={"case_id": known.case}
                ),
                st.sampled_from(known.partners),
            ).map(lambda drawn: _with_body(drawn[0], partner=drawn[1]))
        )
    if operation.path == "/v1/cases":
        # Random partner ids and criteria end at invalid_request; known ones
        # take the generated names and addresses into the register.
        options.append(
            st.tuples(
                operation.as_strategy(GenerationMode.POSITIVE),
                st.sampled_from(known.dwelling_owners),
                st.lists(st.sampled_from(known.partners), unique=True, max_size=4),
                st.lists(st.sampled_from(known.criteria), unique=True),
                PRINTABLE_TEXT,
            ).map(lambda drawn: _registrable(*drawn))
        )
    if operation.path == "/v1/exchanges":
        # A real case, subject and exchange type take the generated period and
        # on_behalf_of through the policy, the provider's adapter and the log.
        options.append(
            st.tuples(
                operation.as_strategy(GenerationMode.POSITIVE),
                st.sampled_from(known.subjects),
                st.sampled_from(known.exchanges),
                st.sampled_from((known.purpose, None)),
            ).map(
                lambda drawn: _with_body(
                    drawn[0], case=known.case, subject=drawn[1], query=drawn[2], purpose=drawn[3]
                )
            )
        )
    return st.one_of(options)


def _with_body(generated: Case[Any], /, **values: Any) -> Case[Any]:
    """Replace those body members the generated body has (None: keep the generated one)."""
    body: Any = generated.body
    if isinstance(body, dict):
        body.update({name: value for name, value in values.items() if name in body and value})
    return generated


# Names and places are free text the document types as any string; the broker
# refuses control and invisible characters in them (broker/text.py).
PRINTABLE_TEXT = st.text(
    st.characters(exclude_categories=("C", "Z"), include_characters=" "), min_size=1, max_size=60
).filter(str.strip)


def _registrable(
    generated: Case[Any], owner: str, partners: list[str], criteria: list[int], text: str
) -> Case[Any]:
    """A generated case registration the register can take: known ids, unique subjects."""
    body: Any = generated.body
    if isinstance(body, dict) and isinstance(body.get("subjects"), list):
        body.update(dwelling_owner=owner, partners=partners, criteria=criteria)
        if isinstance(body.get("address"), dict):
            body["address"]["plaats"] = text
        for number, subject in enumerate(body["subjects"]):
            if isinstance(subject, dict):
                subject["ref"] = f"s-{number}"
                subject["name"] = text
                if number == 0:
                    subject["role"] = "overlastgever"  # a case needs one (CaseRegister)
    return generated


def _send(callers: Callers, caller: str, case: Case[Any]) -> httpx.Response:
    """Send `case` as `caller`; partner and DPO calls go through BrokerClient itself."""
    sent = case.as_transport_kwargs(base_url=callers.base_url)
    method = str(sent["method"])
    path = str(sent["url"]).removeprefix(callers.base_url)
    # RFC 9110 §5.5: a field value has no leading or trailing whitespace, and
    # h11 refuses to send one; the broker would never see it either.
    headers = {str(name): str(value).strip(" \t") for name, value in sent["headers"].items()}
    sender: Any = callers.anonymous
    if caller in (PARTNER, DPO):
        # The client authenticates; a generated Authorization would sit beside its own.
        headers = {k: v for k, v in headers.items() if k.lower() not in ("authorization", "dpop")}
        sender = callers.partner if caller == PARTNER else callers.dpo
    elif caller == DPO_SESSION:
        headers["Cookie"] = callers.dpo_session_cookie()
    options: dict[str, Any] = {"headers": headers}
    if sent.get("params"):
        options["params"] = sent["params"]
    if "json" in sent:
        options["json"] = sent["json"]
    if "data" in sent:
        # A form as a mapping; anything else is the raw body (httpx: content=).
        options["data" if isinstance(sent["data"], dict) else "content"] = sent["data"]
    # BrokerClient.request and httpx.Client.request share this signature.
    response: httpx.Response = sender.request(method.upper(), path, **options)
    return response


# --- what every answer must hold --------------------------------------------------------

PROBLEM_MEMBERS = ("type", "title", "status", "detail", "code")
LOGIN_PAGE = "/dpo/login"
SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
# RFC 6749 §5.2, plus temporarily_unavailable with 503 (broker.auth.oauth_errors).
OAUTH_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "temporarily_unavailable",
    }
)


def _header(response: schemathesis.Response, name: str) -> str | None:
    for key, values in response.headers.items():
        if key.lower() == name.lower() and values:
            return values[0]
    return None


def _media_type(response: schemathesis.Response) -> str:
    return (_header(response, "content-type") or "").split(";", 1)[0].strip().lower()


def _json_object(response: schemathesis.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as e:
        raise AssertionError(f"expected a JSON body, got {response.content[:200]!r}") from e
    assert isinstance(body, dict), f"expected a JSON object, got {body!r}"
    return body


def problem_documents(
    _ctx: schemathesis.CheckContext, response: schemathesis.Response, _case: Case[Any]
) -> None:
    """contract.md, General: every error is an RFC 9457 problem document with `code`."""
    status = response.status_code
    if status < 400:
        return
    assert _media_type(response) == PROBLEM_MEDIA_TYPE, (
        f"expected {PROBLEM_MEDIA_TYPE} with {status}, got {_header(response, 'content-type')!r}"
    )
    body = _json_object(response)
    missing = [member for member in PROBLEM_MEMBERS if member not in body]
    assert not missing, f"expected the members {PROBLEM_MEMBERS}, missing {missing}"
    assert body["status"] == status, f"expected status {status} in the body, got {body['status']!r}"
    code = body["code"]
    assert isinstance(code, str) and SNAKE_CASE.fullmatch(code), (
        f"expected snake_case, got {code!r}"
    )
    if status >= 500:
        assert status == 503 and code.endswith("_unavailable"), (
            f"expected no server error but 503 *_unavailable, got {status} {code!r}"
        )


def oauth_errors(
    _ctx: schemathesis.CheckContext, response: schemathesis.Response, _case: Case[Any]
) -> None:
    """RFC 6749 §5.1 and §5.2: never cached; errors are JSON with a registered `error`."""
    status = response.status_code
    assert "no-store" in (_header(response, "cache-control") or ""), "expected no-store"
    if status < 400:
        return
    assert _media_type(response) == "application/json", f"expected JSON with {status}"
    error = _json_object(response).get("error")
    assert error in OAUTH_ERRORS, f"expected an RFC 6749 error code, got {error!r}"
    if status >= 500:
        assert (status, error) == (503, "temporarily_unavailable"), (
            f"expected no server error but 503 temporarily_unavailable, got {status} {error!r}"
        )


def dpo_pages(
    _ctx: schemathesis.CheckContext, response: schemathesis.Response, _case: Case[Any]
) -> None:
    """broker/api/routes/dpo.py: HTML or a redirect, security headers on every answer."""
    status = response.status_code
    for name, value in SECURITY_HEADERS.items():
        assert _header(response, name) == value, f"expected {name}: {value}"
    if 300 <= status < 400:
        location = _header(response, "location") or ""
        assert location.startswith("/dpo"), f"expected a redirect within /dpo, got {location!r}"
        return
    assert _media_type(response) == "text/html", f"expected HTML with {status}"
    assert status < 500 or status == 503, f"expected no server error but 503, got {status}"


def credentials_accepted(
    _ctx: schemathesis.CheckContext, response: schemathesis.Response, _case: Case[Any]
) -> None:
    """BrokerClient's own credentials always authenticate, whatever the request.

    A 401 here means client and broker disagree on something the caller
    cannot see: the DPoP proof's `htu` for an odd path, the nonce, the clock.
    """
    assert response.status_code != 401, (
        f"expected the client's credentials to be accepted, got 401 {response.content[:300]!r}"
    )


def session_accepted(
    _ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case[Any]
) -> None:
    """A live DPO session opens every page; the login page is for those without one."""
    if case.method.upper() == "GET" and 300 <= response.status_code < 400:
        location = _header(response, "location")
        assert location != LOGIN_PAGE, f"expected the session to be accepted, got {location!r}"


CALLER_CHECKS: dict[str, list[Callable[..., Any]]] = {
    PARTNER: [credentials_accepted],
    DPO: [credentials_accepted],
    DPO_SESSION: [session_accepted],
}
CONTRACT_CHECKS: dict[str, list[Callable[..., Any]]] = {
    API: [problem_documents],
    PUBLIC: [problem_documents],
    OAUTH: [oauth_errors],
    HTML: [dpo_pages],
}


# --- the fuzzing itself -----------------------------------------------------------------


def _document(callers: Callers) -> dict[str, Any]:
    answer = callers.anonymous.get("/openapi.json")
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def test_every_operation_is_fuzzed(callers: Callers) -> None:
    served = {
        (method.upper(), path)
        for path, item in _document(callers)["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert served == set(OPERATIONS), (
        f"expected the table to name every operation; unfuzzed: {sorted(served - set(OPERATIONS))},"
        f" gone: {sorted(set(OPERATIONS) - served)}"
    )


@pytest.mark.parametrize(("method", "path", "caller"), _params())
def test_generated_requests_get_contract_answers(
    method: str,
    path: str,
    caller: str,
    api_schema: BaseSchema,
    callers: Callers,
    known: Known,
) -> None:
    operation = api_schema[path][method]
    contract_checks = [*CONTRACT_CHECKS[OPERATIONS[method, path]], *CALLER_CHECKS.get(caller, [])]

    @settings(
        max_examples=EXAMPLES,
        derandomize=DERANDOMIZE,
        database=None,  # tests leave no file behind (style.md §26)
        deadline=None,  # a round trip over loopback, not a pure function
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(case=_strategy(operation, known))
    def answers_within_contract(case: Case[Any]) -> None:
        response = _send(callers, caller, case)
        # The document's checks (SCHEMA_CHECKS, enabled in api_schema) and the contract's.
        case.validate_response(response, additional_checks=contract_checks)

    answers_within_contract()


# --- what the fuzzer found, pinned (remove each marker with its fix) -------------------


def test_undeclared_method_gets_405_naming_the_allowed_ones(callers: Callers) -> None:
    for (method, path), _kind in OPERATIONS.items():
        allowed = {m for (m, p) in OPERATIONS if p == path}
        concrete = path.replace("{case_id}", "c-1").replace("{ref}", "r-1")
        concrete = concrete.replace("{index}", "0")
        answer = callers.anonymous.request("PATCH", concrete)
        assert answer.status_code == 405, f"{method} {path}: {answer.status_code}"
        assert answer.headers["content-type"] == PROBLEM_MEDIA_TYPE
        named = {m.strip() for m in answer.headers.get("allow", "").split(",") if m.strip()}
        assert allowed <= named, f"PATCH {concrete}: Allow {named}, expected {allowed}"


def test_unreadable_json_body_is_an_invalid_request(callers: Callers) -> None:
    # Found by the negative mode: raw bytes under Content-Type: application/json.
    answer = callers.partner.post(
        "/v1/cases", content=b"\xd0\xf8\xa7", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_request"


def test_openapi_declares_the_answers_the_broker_gives(callers: Callers) -> None:
    for path, operations in _document(callers)["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, f"{method.upper()} {path}: 422 declared, never sent"
            for status in ("400", "401"):
                content = responses.get(status, {}).get("content", {})
                assert PROBLEM_MEDIA_TYPE in content, f"{method.upper()} {path}: no {status}"
