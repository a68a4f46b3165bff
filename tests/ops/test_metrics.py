"""`GET /metrics`: who may scrape, what a scrape shows after real exchanges.

The scrape rule (broker/api/routes/metrics.py): without `metrics_token`,
loopback clients only; with it, the bearer token and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest
from starlette.requests import Request

from broker.api.problems import PROBLEM_MEDIA_TYPE
from broker.api.routes.metrics import MetricsTokenError, verify_scraper
from broker.errors import NotFoundError
from broker.keys import KeyStore
from broker.stack import LocalStack
from tests.ops.conftest import play_story, running_stack

pytestmark = pytest.mark.e2e

TOKEN = "m3tr1cs-" + "a" * 40
DEPENDENCIES = ("audit", "policy", "cache", "case_store")


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in a scrape; 0.0 when the series is absent."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        if metric != name:
            continue
        found = ",".join(sorted(re.findall(r'\w+="[^"]*"', label_text.rstrip("}"))))
        if found == wanted:
            return float(value)
    return 0.0


def scrape(stack: LocalStack, **headers: str) -> str:
    answer = httpx.get(stack.broker_url + "/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return answer.text


BACKENDS = {
    "embedded": {},
    "production": {"storage_backend": "postgres", "cache_backend": "redis"},
}


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def stack(
    request: pytest.FixtureRequest,
    keystore: KeyStore,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server_dsn: str,
) -> Iterator[LocalStack]:
    workdir = tmp_path_factory.mktemp(f"ops-metrics-{request.param}")
    backend = {"postgres_dsn": postgres_server_dsn, **BACKENDS[request.param]}
    with running_stack(workdir, keystore, **backend) as running:
        yield running


@pytest.fixture(scope="module")
def guarded(keystore: KeyStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    workdir = tmp_path_factory.mktemp("ops-metrics-token")
    with running_stack(workdir, keystore, metrics_token=TOKEN) as running:
        yield running


# --- who may scrape ---------------------------------------------------------------------


def _request(host: str, authorization: str | None = None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    return Request({"type": "http", "client": (host, 40000), "headers": headers})


@pytest.mark.parametrize(
    ("host", "token", "authorization", "refused_with"),
    [
        # no token configured: a Prometheus on the same host may scrape
        ("127.0.0.1", None, None, None),
        ("::1", None, None, None),
        # no token configured: nobody else, whatever they send
        ("10.0.0.7", None, None, NotFoundError),
        ("10.0.0.7", None, f"Bearer {TOKEN}", NotFoundError),
        # a client without an address (a Unix socket): not trusted as loopback
        ("unix-socket", None, None, NotFoundError),
        # token configured: the token admits any address
        ("10.0.0.7", TOKEN, f"Bearer {TOKEN}", None),
        ("10.0.0.7", TOKEN, f"bearer {TOKEN}", None),
        # token configured: loopback alone is not enough any more
        ("127.0.0.1", TOKEN, None, MetricsTokenError),
        # a wrong token, a prefix of the token, the token with another scheme
        ("10.0.0.7", TOKEN, "Bearer wrong-token-wrong-token", MetricsTokenError),
        ("10.0.0.7", TOKEN, f"Bearer {TOKEN[:-1]}", MetricsTokenError),
        ("10.0.0.7", TOKEN, f"Basic {TOKEN}", MetricsTokenError),
        ("10.0.0.7", TOKEN, f"DPoP {TOKEN}", MetricsTokenError),
        # an oversized header is refused unread
        ("10.0.0.7", TOKEN, "Bearer " + "x" * 600, MetricsTokenError),
    ],
)
def test_only_admitted_scrapers_get_metrics(
    host: str, token: str | None, authorization: str | None, refused_with: type[Exception] | None
) -> None:
    request = _request(host, authorization)
    if refused_with is None:
        verify_scraper(request, token=token)
    else:
        with pytest.raises(refused_with):
            verify_scraper(request, token=token)


def test_token_protected_metrics_refuse_without_the_token(guarded: LocalStack) -> None:
    for headers in ({}, {"Authorization": "Bearer not-the-metrics-token"}):
        answer = httpx.get(guarded.broker_url + "/metrics", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.json()["code"] == "invalid_token"
        assert "ketenbroker_" not in answer.text
    text = scrape(guarded, Authorization=f"Bearer {TOKEN}")
    # The refusals above are themselves counted, by their problem code.
    assert sample(text, "ketenbroker_refusals_total", code="invalid_token") >= 2


def test_metrics_stay_out_of_the_partners_openapi_document(stack: LocalStack) -> None:
    document = httpx.get(stack.broker_url + "/openapi.json").json()
    assert "/metrics" not in document["paths"]
    assert "/readyz" in document["paths"]


# --- what a scrape shows ----------------------------------------------------------------


def test_dependencies_are_reported_up(stack: LocalStack) -> None:
    text = scrape(stack)
    for dependency in DEPENDENCIES:
        assert sample(text, "ketenbroker_dependency_up", dependency=dependency) == 1.0


def test_refusals_are_counted_by_problem_code(stack: LocalStack, keystore: KeyStore) -> None:
    before = scrape(stack)
    answers = play_story(stack, keystore)
    after = scrape(stack)
    codes = [a.json()["code"] for a in answers if a.status_code >= 400]
    assert codes, "expected the story to hold refusals"
    for code in set(codes):
        grown = sample(after, "ketenbroker_refusals_total", code=code) - sample(
            before, "ketenbroker_refusals_total", code=code
        )
        assert grown == codes.count(code), f"{code}: counted {grown}, sent {codes.count(code)}"


def test_an_unreachable_cache_is_reported_down(
    keystore: KeyStore, tmp_path_factory: pytest.TempPathFactory
) -> None:
    workdir = tmp_path_factory.mktemp("ops-redis-down")
    # Nothing listens on 127.0.0.1:1 (tests/security/test_faults.py does the same).
    with running_stack(
        workdir, keystore, cache_backend="redis", redis_url="redis://127.0.0.1:1/0"
    ) as down:
        ready = httpx.get(down.broker_url + "/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["replay_cache"] == "unavailable"
        text = scrape(down)
    assert sample(text, "ketenbroker_dependency_up", dependency="cache") == 0.0
    for dependency in ("audit", "policy", "case_store"):
        assert sample(text, "ketenbroker_dependency_up", dependency=dependency) == 1.0


def _story_growth(stack: LocalStack, keystore: KeyStore) -> tuple[int, Callable[..., float]]:
    """Play the story between two scrapes: the permitted exchanges and each series' growth."""
    before = scrape(stack)
    answers = play_story(stack, keystore)
    after = scrape(stack)
    permitted = sum(1 for a in answers if a.status_code == 200)
    assert permitted >= 2

    def grown(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    return permitted, grown


def test_exchanges_show_in_the_metrics(stack: LocalStack, keystore: KeyStore) -> None:
    """Instrumented by the pipeline, the policy engines and the gateway; seen from outside."""
    permitted, grown = _story_growth(stack, keystore)
    answered = sum(
        grown("ketenbroker_exchanges_total", decision=decision, reason="none")
        for decision in ("permit", "partial")
    )
    assert answered == permitted
    assert (
        grown("ketenbroker_exchange_seconds_count", decision="partial")
        + grown("ketenbroker_exchange_seconds_count", decision="permit")
        == permitted
    )
    decisions = grown(
        "ketenbroker_policy_decision_seconds_count", entrypoint="ketenbroker/exchange/decision"
    )
    assert decisions >= permitted
    assert grown("ketenbroker_adapter_call_seconds_count", provider="politie-lekstroom") >= 1


def test_audit_commits_show_in_the_metrics(stack: LocalStack, keystore: KeyStore) -> None:
    """Instrumented by the audit log (append wait, commit time, batch size)."""
    permitted, grown = _story_growth(stack, keystore)
    # Every answered exchange writes an intent and a closing entry.
    assert grown("ketenbroker_audit_append_seconds_count") >= 2 * permitted
    assert grown("ketenbroker_audit_commit_seconds_count") >= 1
    assert grown("ketenbroker_audit_batch_entries_sum") >= 2 * permitted
