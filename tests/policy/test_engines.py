"""Conformance of the policy engines: embedded (regopy) and OPA server, one contract.

Every test taking the `engine` fixture runs against both `EmbeddedPolicyEngine`
and `OpaPolicyEngine`, the latter talking to the OPA stand-in
(tests/support/opa_standin.py) that reads the same bundle the way docker/
gives it to OPA: written by `write_opa_bundle`, loaded as a bundle directory,
its revision checked on every decision. The stand-in evaluates with rego-cpp too, so
agreement here shows that the OPA engine keeps the contract (the request it
sends, how it reads OPA's answers, and that every failure fails closed), not
that OPA and rego-cpp read Rego alike; that comparison needs the real OPA of
docker/. The tests after the conformance table are the OPA engine's own: what
it does when OPA is down, slow, or answers something that is not a decision.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.convenant import Convenant, load_convenant
from broker.errors import PolicyUnavailableError
from broker.policy.embedded import EmbeddedPolicyEngine
from broker.policy.engine import PolicyBundle, PolicyEngine
from broker.policy.inputs import convenant_data
from broker.policy.opa import OpaPolicyEngine, main, write_opa_bundle
from broker.services import build_policy_engine
from broker.settings import PROJECT_ROOT, Settings
from tests.support.opa_standin import MALFORMED_BODY, OpaStandIn

EXCHANGE = "ketenbroker/exchange/decision"
DISCLOSURE = "ketenbroker/disclosure/decision"

# The broker's default policy timeout (Settings.policy_timeout_seconds).
TIMEOUT_SECONDS = 2.0
# Short enough to keep the slow-OPA tests quick, long enough for a loaded CI box.
SHORT_TIMEOUT_SECONDS = 0.3

EXCHANGE_MODULE = """\
package ketenbroker.exchange

default allow := false

allow if count(refusals) == 0

refusals contains "unknown_exchange" if not data.test.exchanges[input.exchange]

refusals contains "role_not_allowed" if {
	some ex in [data.test.exchanges[input.exchange]]
	not input.role in ex.roles
}

refusals contains "period_too_wide" if {
	input.period_days > data.test.exchanges[input.exchange].max_days
}

default fields := []

fields := data.test.exchanges[input.exchange].fields if allow

default echo := null

echo := input.echo

decision := {
	"allow": allow,
	"refusals": sort([r | some r in refusals]),
	"fields": fields,
	"note": sprintf("%d refusal(s)", [count(refusals)]),
	"echo": echo,
}
"""

# Undefined unless the input carries an answer: the fail-closed case.
DISCLOSURE_MODULE = """\
package ketenbroker.disclosure

decision := {"disclose": disclose, "withheld": withheld} if input.answer

disclose := [f.name | some f in input.answer; f.category in data.test.ordinary]

withheld := [f.name | some f in input.answer; not f.category in data.test.ordinary]
"""

TEST_DATA = {
    "test": {
        "exchanges": {
            "politie.meldingen": {
                "roles": ["gemeente"],
                "max_days": 730,
                "fields": ["meldingen_aantal", "politie_inzet"],
            },
            "corporatie.huurrelatie": {
                "roles": ["gemeente", "politie"],
                "max_days": 1830,
                "fields": ["huurder_sinds"],
            },
        },
        "ordinary": ["nuisance", "tenancy"],
    }
}

ALLOWED_FIELDS = ["meldingen_aantal", "politie_inzet"]

EXCHANGE_CASES = [
    # An allowed question: the fields come from data, no refusals.
    (
        {"exchange": "politie.meldingen", "role": "gemeente", "period_days": 365},
        {"allow": True, "refusals": [], "fields": ALLOWED_FIELDS, "note": "0 refusal(s)"},
    ),
    # A role the exchange is not open to.
    (
        {"exchange": "politie.meldingen", "role": "corporatie", "period_days": 365},
        {"allow": False, "refusals": ["role_not_allowed"], "fields": [], "note": "1 refusal(s)"},
    ),
    # An exchange the data does not know: refused, not undefined.
    (
        {"exchange": "politie.verhoren", "role": "gemeente", "period_days": 1},
        {"allow": False, "refusals": ["unknown_exchange"], "fields": [], "note": "1 refusal(s)"},
    ),
    # No exchange at all: still a decision, and a refusal.
    (
        {"role": "gemeente"},
        {"allow": False, "refusals": ["unknown_exchange"], "fields": [], "note": "1 refusal(s)"},
    ),
    # One day beyond the bound.
    (
        {"exchange": "politie.meldingen", "role": "gemeente", "period_days": 731},
        {"allow": False, "refusals": ["period_too_wide"], "fields": [], "note": "1 refusal(s)"},
    ),
    # Two refusals at once come back sorted, the same on both engines.
    (
        {"exchange": "politie.meldingen", "role": "zorg", "period_days": 9999},
        {
            "allow": False,
            "refusals": ["period_too_wide", "role_not_allowed"],
            "fields": [],
            "note": "2 refusal(s)",
        },
    ),
]

ECHO_CASES = [
    # Dutch text with diacritics survives the JSON round trip unchanged.
    "overlastgever in de Kruisstraat, één melding",
    # null, booleans and fractions keep their JSON types.
    {"a": None, "b": True, "c": 1.5, "d": -7},
    # Nested lists and objects keep their order and shape.
    [[1, 2], {"k": ["v", {"w": []}]}],
    # An empty object is a value, not "undefined".
    {},
]

DISCLOSURE_CASES = [
    # Ordinary categories are disclosed, the rest withheld.
    (
        {
            "answer": [
                {"name": "meldingen_aantal", "category": "nuisance"},
                {"name": "diagnose", "category": "health"},
            ]
        },
        {"disclose": ["meldingen_aantal"], "withheld": ["diagnose"]},
    ),
    # An empty answer is still an answer: nothing to disclose, nothing withheld.
    ({"answer": []}, {"disclose": [], "withheld": []}),
]


@pytest.fixture(scope="module")
def bundle() -> PolicyBundle:
    return PolicyBundle(
        modules={"exchange.rego": EXCHANGE_MODULE, "disclosure.rego": DISCLOSURE_MODULE},
        data=TEST_DATA,
        version="sha256:test-bundle",
    )


@pytest.fixture
def standin() -> Iterator[OpaStandIn]:
    with OpaStandIn() as server:
        yield server


def _serve_as_bundle(standin: OpaStandIn, bundle: PolicyBundle, directory: Path) -> None:
    """What docker/ does: write the bundle for OPA, and OPA loads it with --bundle."""
    standin.serve_bundle(bundle, directory)


@pytest.fixture
def opa_engine(
    standin: OpaStandIn, bundle: PolicyBundle, tmp_path: Path
) -> Iterator[OpaPolicyEngine]:
    _serve_as_bundle(standin, bundle, tmp_path / "bundle")
    with OpaPolicyEngine(
        url=standin.url, version=bundle.version, timeout_seconds=TIMEOUT_SECONDS
    ) as engine:
        yield engine


@pytest.fixture
def impatient_opa_engine(
    standin: OpaStandIn, bundle: PolicyBundle, tmp_path: Path
) -> Iterator[OpaPolicyEngine]:
    _serve_as_bundle(standin, bundle, tmp_path / "bundle")
    with OpaPolicyEngine(
        url=standin.url, version=bundle.version, timeout_seconds=SHORT_TIMEOUT_SECONDS
    ) as engine:
        yield engine


@pytest.fixture(params=["embedded", "opa"])
def engine(request: pytest.FixtureRequest, bundle: PolicyBundle) -> PolicyEngine:
    if request.param == "embedded":
        return EmbeddedPolicyEngine(bundle)
    opa: OpaPolicyEngine = request.getfixturevalue("opa_engine")
    return opa


# -- the contract, on both engines --------------------------------------------


@pytest.mark.parametrize(("input_document", "expected"), EXCHANGE_CASES)
def test_engines_decide_exchange_alike(
    engine: PolicyEngine, input_document: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert engine.evaluate(EXCHANGE, input_document) == {**expected, "echo": None}


@pytest.mark.parametrize("value", ECHO_CASES)
def test_input_values_round_trip_unchanged(engine: PolicyEngine, value: Any) -> None:
    decision = engine.evaluate(EXCHANGE, {"echo": value})
    assert decision["echo"] == value


@pytest.mark.parametrize(("input_document", "expected"), DISCLOSURE_CASES)
def test_engines_decide_disclosure_alike(
    engine: PolicyEngine, input_document: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert engine.evaluate(DISCLOSURE, input_document) == expected


def test_undefined_result_fails_closed(engine: PolicyEngine) -> None:
    with pytest.raises(PolicyUnavailableError, match="undefined"):
        engine.evaluate(DISCLOSURE, {"exchange": "politie.meldingen"})


def test_unknown_entrypoint_is_refused(engine: PolicyEngine) -> None:
    with pytest.raises(PolicyUnavailableError, match="expected one of"):
        engine.evaluate("ketenbroker/exchange/refusals", {})


def test_ready_engine_pings(engine: PolicyEngine) -> None:
    engine.ping()


def test_version_names_the_bundle(engine: PolicyEngine, bundle: PolicyBundle) -> None:
    assert engine.version == bundle.version


# -- the project's real policies, when there are any ---------------------------

REAL_POLICIES = PROJECT_ROOT / "policies"

_REQUESTER = {"partner": "gemeente-lekstroom", "role": "gemeente"}
_CASE = {
    "status": "open",
    "regisseur": "gemeente-lekstroom",
    "dwelling_owner": None,
    "consent": None,
    "partners": [
        {"partner": "gemeente-lekstroom", "role": "gemeente", "status": "actief"},
        {"partner": "politie-lekstroom", "role": "politie", "status": "actief"},
    ],
    "subjects": [{"ref": "subject-1"}],
}
REAL_CASES = [
    # The regisseur asks the police about a party of the case.
    (
        EXCHANGE,
        {
            "requester": _REQUESTER,
            "exchange": {
                "query": "politie.meldingen",
                "purpose": "aanpak_woonoverlast",
                "period": {"days": 365},
            },
            "case": _CASE,
            "subject": {"ref": "subject-1"},
        },
    ),
    # Somebody who is no partner of the case asks anyway.
    (
        EXCHANGE,
        {
            "requester": {"partner": "woongoed-lekstroom", "role": "corporatie"},
            "exchange": {
                "query": "gemeente.maatregelen",
                "purpose": "opsporing",
                "period": {"days": 99999},
            },
            "case": _CASE,
            "subject": {"ref": "subject-2"},
        },
    ),
    # An answer with a listed field and a special-category one.
    (
        DISCLOSURE,
        {
            "requester": _REQUESTER,
            "exchange": {"query": "politie.meldingen", "purpose": "aanpak_woonoverlast"},
            "case": _CASE,
            "answer": {
                "fields": [
                    {"name": "meldingen_aantal", "category": "nuisance", "value": 3},
                    {"name": "diagnose", "category": "health", "value": "x"},
                ]
            },
        },
    ),
]


def _outcome(engine: PolicyEngine, entrypoint: str, input_document: dict[str, Any]) -> Any:
    try:
        return ("decision", engine.evaluate(entrypoint, input_document))
    except PolicyUnavailableError:
        return ("unavailable", None)


@pytest.fixture(scope="module")
def real_bundle(convenant: Convenant) -> PolicyBundle:
    if not any(REAL_POLICIES.rglob("*.rego")):
        pytest.skip("policies/ holds no Rego modules yet")
    # The serving bundle, as broker.services builds it: policies/ plus the convenant.
    return PolicyBundle.from_directory(REAL_POLICIES).with_data(convenant_data(convenant))


def test_engines_agree_on_the_real_policies(
    standin: OpaStandIn, real_bundle: PolicyBundle, tmp_path: Path
) -> None:
    embedded = EmbeddedPolicyEngine(real_bundle)
    _serve_as_bundle(standin, real_bundle, tmp_path / "bundle")
    with OpaPolicyEngine(
        url=standin.url, version=real_bundle.version, timeout_seconds=TIMEOUT_SECONDS
    ) as opa:
        outcomes = [
            (_outcome(embedded, entrypoint, doc), _outcome(opa, entrypoint, doc))
            for entrypoint, doc in REAL_CASES
        ]
    for (embedded_outcome, opa_outcome), (entrypoint, _) in zip(outcomes, REAL_CASES, strict=True):
        assert embedded_outcome == opa_outcome, entrypoint
    # Agreement on "no decision anywhere" would prove nothing: the well-formed
    # exchange requests above must each get a decision.
    exchange_kinds = [
        o[0][0] for o, (ep, _) in zip(outcomes, REAL_CASES, strict=True) if ep == EXCHANGE
    ]
    assert exchange_kinds == ["decision"] * len(exchange_kinds)


# -- the OPA engine fails closed ------------------------------------------------


def test_unreachable_opa_fails_closed(standin: OpaStandIn, opa_engine: OpaPolicyEngine) -> None:
    standin.stop()
    with pytest.raises(PolicyUnavailableError, match="ConnectError") as caught:
        opa_engine.evaluate(EXCHANGE, {"role": "gemeente"})
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_ping_raises_when_opa_is_down(standin: OpaStandIn, opa_engine: OpaPolicyEngine) -> None:
    standin.stop()
    with pytest.raises(PolicyUnavailableError, match="/health"):
        opa_engine.ping()


def test_slow_opa_fails_closed_within_the_timeout(
    standin: OpaStandIn, impatient_opa_engine: OpaPolicyEngine
) -> None:
    with standin.faults(delay_seconds=30):
        started = time.monotonic()
        with pytest.raises(PolicyUnavailableError, match="within the timeout") as caught:
            impatient_opa_engine.evaluate(EXCHANGE, {"role": "gemeente"})
        elapsed = time.monotonic() - started
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)
    assert elapsed < SHORT_TIMEOUT_SECONDS + 1.0


def test_ping_raises_when_opa_is_slow(
    standin: OpaStandIn, impatient_opa_engine: OpaPolicyEngine
) -> None:
    with standin.faults(delay_seconds=30):
        started = time.monotonic()
        with pytest.raises(PolicyUnavailableError):
            impatient_opa_engine.ping()
        assert time.monotonic() - started < SHORT_TIMEOUT_SECONDS + 1.0


def test_malformed_answer_fails_closed(standin: OpaStandIn, opa_engine: OpaPolicyEngine) -> None:
    with standin.faults(malformed=True), pytest.raises(PolicyUnavailableError) as caught:
        opa_engine.evaluate(EXCHANGE, {"role": "gemeente"})
    assert isinstance(caught.value.__cause__, ValueError)


@pytest.mark.parametrize(
    "body",
    [
        # Cut off mid-token.
        MALFORMED_BODY,
        # JSON, but not an object: no "result" member to read.
        b'[{"result": {"allow": true}}]',
        # A bare string that merely names the member.
        b'"result"',
        # null is not a decision.
        b"null",
        # Not UTF-8 at all.
        b"\xff\xfe\x00",
        # An empty body.
        b"",
    ],
)
def test_answer_that_is_no_json_object_fails_closed(
    standin: OpaStandIn, opa_engine: OpaPolicyEngine, body: bytes
) -> None:
    with standin.faults(raw_body=body), pytest.raises(PolicyUnavailableError):
        opa_engine.evaluate(EXCHANGE, {"role": "gemeente"})


@pytest.mark.parametrize(
    "status",
    [
        # A success other than 200 is not OPA's decision answer.
        202,
        # OPA's "bad input" and "no such thing" answers.
        400,
        404,
        # OPA's evaluation errors (e.g. conflicting rule values) and overload.
        500,
        503,
    ],
)
def test_error_status_fails_closed(
    standin: OpaStandIn, opa_engine: OpaPolicyEngine, status: int
) -> None:
    with (
        standin.faults(fail_status=status),
        pytest.raises(PolicyUnavailableError, match=f"got {status}"),
    ):
        opa_engine.evaluate(EXCHANGE, {"role": "gemeente"})


def test_redirect_elsewhere_is_not_followed(
    standin: OpaStandIn, opa_engine: OpaPolicyEngine, bundle: PolicyBundle, tmp_path: Path
) -> None:
    """A 307 would resend the case data to wherever it points, and take that answer."""
    with OpaStandIn() as elsewhere:
        _serve_as_bundle(elsewhere, bundle, tmp_path / "elsewhere")
        with (
            standin.faults(redirect_to=elsewhere.url),
            pytest.raises(PolicyUnavailableError, match="got 307"),
        ):
            opa_engine.evaluate(EXCHANGE, {"exchange": "politie.meldingen", "role": "gemeente"})


def test_oversized_answer_fails_closed(
    standin: OpaStandIn, bundle: PolicyBundle, tmp_path: Path
) -> None:
    _serve_as_bundle(standin, bundle, tmp_path / "bundle")
    with (
        OpaPolicyEngine(
            url=standin.url,
            version=bundle.version,
            timeout_seconds=TIMEOUT_SECONDS,
            max_response_bytes=64,
        ) as engine,
        pytest.raises(PolicyUnavailableError, match="at most 64 bytes"),
    ):
        engine.evaluate(EXCHANGE, {"echo": "x" * 100})


def test_decisions_never_go_through_an_environment_proxy(
    standin: OpaStandIn, bundle: PolicyBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case data goes to OPA itself, whatever HTTP(S)_PROXY the process inherited."""
    _serve_as_bundle(standin, bundle, tmp_path / "bundle")
    # Port 9 (discard) on loopback: nothing listens, a proxied call would fail.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with OpaPolicyEngine(
        url=standin.url, version=bundle.version, timeout_seconds=TIMEOUT_SECONDS
    ) as engine:
        decision = engine.evaluate(EXCHANGE, {"exchange": "politie.meldingen", "role": "gemeente"})
    assert decision["allow"] is True


def test_input_that_is_not_json_is_refused(opa_engine: OpaPolicyEngine) -> None:
    with pytest.raises(PolicyUnavailableError, match=r"not JSON|NaN"):
        opa_engine.evaluate(EXCHANGE, {"echo": float("nan")})


@pytest.mark.parametrize(
    "url",
    [
        # No scheme: host and port would be misread.
        "opa:8181",
        # Not HTTP.
        "ftp://opa:8181",
        # Credentials in the URL end up in logs.
        "http://user:secret@opa:8181",
        # OPA serves at the root; a prefix would silently be dropped.
        "http://opa:8181/prefix",
        # A port that is not a number.
        "http://opa:eighty",
    ],
)
def test_unusable_opa_url_is_rejected(url: str) -> None:
    with pytest.raises(PolicyUnavailableError, match="expected"):
        OpaPolicyEngine(url=url, version="v", timeout_seconds=TIMEOUT_SECONDS)


@pytest.mark.parametrize(
    "entrypoints",
    [
        # No entrypoint: nothing could ever be decided.
        (),
        # Path traversal out of the Data API.
        ("ketenbroker/../../v1/policies",),
        # A query string smuggled into the path.
        ("ketenbroker/exchange/decision?explain=full",),
        # A trailing newline, which a `$`-anchored pattern would let through.
        ("ketenbroker/exchange/decision\n",),
    ],
)
def test_unsafe_entrypoints_are_rejected(entrypoints: tuple[str, ...]) -> None:
    with pytest.raises(PolicyUnavailableError, match="expected"):
        OpaPolicyEngine(
            url="http://127.0.0.1:8181",
            version="v",
            timeout_seconds=TIMEOUT_SECONDS,
            entrypoints=entrypoints,
        )


# -- which policy decided: the bundle revision ---------------------------------


def test_decision_from_another_bundle_revision_fails_closed(
    standin: OpaStandIn, bundle: PolicyBundle, tmp_path: Path
) -> None:
    """OPA holds an older policy than the one the audit log would name."""
    older = PolicyBundle(modules=bundle.modules, data=bundle.data, version="sha256:older")
    _serve_as_bundle(standin, older, tmp_path / "bundle")
    with (
        OpaPolicyEngine(
            url=standin.url, version=bundle.version, timeout_seconds=TIMEOUT_SECONDS
        ) as engine,
        pytest.raises(PolicyUnavailableError, match="sha256:older"),
    ):
        engine.evaluate(EXCHANGE, {"exchange": "politie.meldingen", "role": "gemeente"})


def test_decision_without_a_bundle_fails_closed(standin: OpaStandIn, bundle: PolicyBundle) -> None:
    """Loose modules (pushed through the API, or `opa run` on files) name no revision."""
    standin.load(bundle)
    with (
        OpaPolicyEngine(
            url=standin.url, version=bundle.version, timeout_seconds=TIMEOUT_SECONDS
        ) as engine,
        pytest.raises(PolicyUnavailableError, match="revision"),
    ):
        engine.evaluate(EXCHANGE, {"exchange": "politie.meldingen", "role": "gemeente"})


def test_ping_raises_when_opa_holds_another_bundle_revision(
    standin: OpaStandIn, bundle: PolicyBundle, tmp_path: Path
) -> None:
    """Readiness says no before the first request would be refused."""
    older = PolicyBundle(modules=bundle.modules, data=bundle.data, version="sha256:older")
    _serve_as_bundle(standin, older, tmp_path / "bundle")
    with (
        OpaPolicyEngine(
            url=standin.url, version=bundle.version, timeout_seconds=TIMEOUT_SECONDS
        ) as engine,
        pytest.raises(PolicyUnavailableError, match="sha256:older"),
    ):
        engine.ping()


@pytest.mark.parametrize(
    "provenance",
    [
        # No provenance member at all.
        None,
        # Provenance, but no bundles in it.
        {"version": "1.19.1"},
        # Two bundles, one of them foreign: part of the policy is unknown.
        {"bundles": {"a": {"revision": "sha256:test-bundle"}, "b": {"revision": "x"}}},
        # A bundle without a revision.
        {"bundles": {"a": {}}},
    ],
)
def test_unprovable_provenance_fails_closed(
    standin: OpaStandIn, opa_engine: OpaPolicyEngine, provenance: Any
) -> None:
    answer: dict[str, Any] = {"result": {"allow": True}}
    if provenance is not None:
        answer["provenance"] = provenance
    raw = json.dumps(answer).encode()
    with standin.faults(raw_body=raw), pytest.raises(PolicyUnavailableError, match="revision"):
        opa_engine.evaluate(EXCHANGE, {})


def test_bundle_for_opa_holds_exactly_what_the_broker_versions(
    bundle: PolicyBundle, tmp_path: Path
) -> None:
    target = tmp_path / "bundle"
    write_opa_bundle(bundle, target)
    manifest = json.loads((target / ".manifest").read_text())
    assert manifest["revision"] == bundle.version
    assert set(manifest["roots"]) == {"ketenbroker", *bundle.data}
    modules = {p.relative_to(target).as_posix(): p.read_text() for p in target.rglob("*.rego")}
    assert modules == bundle.modules
    data = {p.parent.name: json.loads(p.read_text()) for p in target.glob("*/data.json")}
    assert data == bundle.data


def test_rewritten_bundle_keeps_no_module_of_the_older_one(
    bundle: PolicyBundle, tmp_path: Path
) -> None:
    target = tmp_path / "bundle"
    extra = "package ketenbroker.legacy\n\nallow := true\n"
    write_opa_bundle(
        PolicyBundle(
            modules={**bundle.modules, "legacy/old.rego": extra},
            data={**bundle.data, "old": {}},
            version="sha256:older",
        ),
        target,
    )
    write_opa_bundle(bundle, target)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*.rego")) == sorted(
        bundle.modules
    )
    assert not (target / "old").exists()
    assert not (target / "legacy").exists()


def test_bundle_writer_leaves_a_foreign_directory_alone(
    bundle: PolicyBundle, tmp_path: Path
) -> None:
    """A mistyped target must not be emptied: only an earlier bundle is replaced."""
    keep = tmp_path / "important.txt"
    keep.write_text("not a bundle")
    with pytest.raises(PolicyUnavailableError, match="earlier bundle"):
        write_opa_bundle(bundle, tmp_path)
    assert keep.read_text() == "not a bundle"


@pytest.mark.parametrize(
    "modules",
    [
        # A path climbing out of the bundle directory.
        {"../escape.rego": "package ketenbroker.x\n"},
        # An absolute path.
        {"/etc/x.rego": "package ketenbroker.x\n"},
        # No package clause: OPA could not place it under a root.
        {"x.rego": "# nothing here\n"},
    ],
)
def test_bundle_writer_refuses_modules_it_cannot_place(
    modules: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(PolicyUnavailableError, match="expected"):
        write_opa_bundle(PolicyBundle(modules=modules, data={}, version="v"), tmp_path / "b")
    assert not (tmp_path / "escape.rego").exists()


def test_bundle_command_writes_the_revision_the_broker_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m broker.policy.opa DIR`, as docker/ runs it, names the broker's own version."""
    if not any(REAL_POLICIES.rglob("*.rego")):
        pytest.skip("policies/ holds no Rego modules yet")
    # The version does not depend on the engine kind; the embedded one opens no connection.
    settings = Settings(policy_engine="embedded")
    recorded = build_policy_engine(settings, load_convenant(settings.convenant_path)).version
    assert main([str(tmp_path / "bundle")]) == 0
    manifest = json.loads((tmp_path / "bundle" / ".manifest").read_text())
    assert manifest["revision"] == recorded
    assert recorded in capsys.readouterr().out


# -- uploads and the stand-in itself ---------------------------------------------


def test_upload_bundle_leaves_only_the_bundles_modules(
    standin: OpaStandIn, bundle: PolicyBundle
) -> None:
    stale = 'package ketenbroker.exchange\n\ndecision := {"allow": true}\n'
    with OpaPolicyEngine(
        url=standin.url,
        version=bundle.version,
        timeout_seconds=TIMEOUT_SECONDS,
        verify_bundle_revision=False,
    ) as engine:
        engine.upload_bundle(
            PolicyBundle(modules={"stale.rego": stale}, data={}, version="sha256:old")
        )
        assert engine.evaluate(EXCHANGE, {}) == {"allow": True}
        engine.upload_bundle(bundle)
        listed = httpx.get(f"{standin.url}/v1/policies").json()["result"]
        assert sorted(p["id"] for p in listed) == sorted(bundle.modules)
        assert engine.evaluate(EXCHANGE, {})["allow"] is False


def test_upload_of_a_module_opa_rejects_fails(standin: OpaStandIn) -> None:
    broken = PolicyBundle(
        modules={"broken.rego": "package ketenbroker.exchange\n\ndecision if {\n"},
        data={},
        version="sha256:broken",
    )
    with OpaPolicyEngine(
        url=standin.url, version="v", timeout_seconds=TIMEOUT_SECONDS, verify_bundle_revision=False
    ) as engine:
        with pytest.raises(PolicyUnavailableError, match="accept the policy modules"):
            engine.upload_bundle(broken)
        with pytest.raises(PolicyUnavailableError, match="undefined"):
            engine.evaluate(EXCHANGE, {})


def test_upload_data_keeps_other_documents(standin: OpaStandIn, bundle: PolicyBundle) -> None:
    with OpaPolicyEngine(
        url=standin.url,
        version=bundle.version,
        timeout_seconds=TIMEOUT_SECONDS,
        verify_bundle_revision=False,
    ) as engine:
        engine.upload_bundle(bundle)
        engine.upload_data({"convenant": {"id": "convenant-woonoverlast-lekstroom"}})
        assert httpx.get(f"{standin.url}/v1/data/test/ordinary").json() == {
            "result": TEST_DATA["test"]["ordinary"]
        }
        assert httpx.get(f"{standin.url}/v1/data/convenant/id").json() == {
            "result": "convenant-woonoverlast-lekstroom"
        }


def test_standin_answers_undefined_as_opa_does(standin: OpaStandIn, bundle: PolicyBundle) -> None:
    """OPA answers 200 with ``{}``, no ``result``, for an undefined document."""
    standin.load(bundle)
    answer = httpx.post(f"{standin.url}/v1/data/{DISCLOSURE}", json={"input": {}})
    assert (answer.status_code, answer.json()) == (200, {})
    answer = httpx.post(f"{standin.url}/v1/data/no/such/rule", json={"input": {}})
    assert (answer.status_code, answer.json()) == (200, {})


def test_stopped_standin_leaves_no_thread_behind(bundle: PolicyBundle) -> None:
    before = set(threading.enumerate())
    server = OpaStandIn().start()
    server.load(bundle)
    server.delay_seconds = 30
    outcome: list[BaseException] = []

    def ask_health() -> None:
        try:
            httpx.get(f"{server.url}/health", timeout=10)
        except httpx.HTTPError as e:
            outcome.append(e)

    # A request the stand-in is holding back when it is told to stop.
    waiter = threading.Thread(target=ask_health)
    waiter.start()
    time.sleep(0.1)
    started = time.monotonic()
    server.stop()
    waiter.join(timeout=5)
    assert time.monotonic() - started < 5
    assert not waiter.is_alive()
    assert len(outcome) == 1  # closed unanswered: the client saw no decision
    # Neither the serving thread nor the request thread that was holding back.
    assert set(threading.enumerate()) - before == set()
