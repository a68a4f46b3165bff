"""The OPA comparison reports "not available" when no OPA answers, never a figure."""

from __future__ import annotations

import pytest

from bench.policy_compare import ENTRYPOINTS, probe_opa, run
from bench.schema import validate
from broker.stack import free_port
from tests.support.opa_standin import OpaStandIn


def _closed_url() -> str:
    # A port that was free a moment ago: nothing listens there.
    return f"http://127.0.0.1:{free_port()}"


def test_probe_of_a_closed_port_says_nobody_answered() -> None:
    url = _closed_url()
    reason = probe_opa(url)
    assert reason is not None
    assert f"no OPA server answered at {url}" in reason


def test_probe_of_a_server_with_a_failing_health_says_so() -> None:
    with OpaStandIn() as standin, standin.faults(fail_status=500):
        url = standin.url
        reason = probe_opa(url)
    assert reason == f"OPA at {url} answered /health with 500"


def test_probe_of_an_answering_server_is_none() -> None:
    with OpaStandIn() as standin:
        assert probe_opa(standin.url) is None


def test_no_opa_means_not_available_and_embedded_still_measured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = _closed_url()
    monkeypatch.setenv("KETENBROKER_OPA_URL", url)
    result = run(with_standin=False, rounds=5, seconds=1.0)
    opa = result["opa_server"]
    assert opa["status"] == "not available"
    assert opa["url"] == url
    assert not {"p50_ms", *ENTRYPOINTS} & set(opa)  # no figure of any kind
    for entrypoint in ENTRYPOINTS:
        assert result["embedded"][entrypoint]["status"] == "measured"
        assert result["embedded"][entrypoint]["count"] >= 1
    assert "opa_standin" not in result
    problems = validate({"policy": result})
    assert not [p for p in problems if p.startswith("policy")], problems


def test_the_standin_is_labelled_as_not_opa() -> None:
    result = run(opa_url=_closed_url(), rounds=3, seconds=0.5)
    standin = result["opa_standin"]
    assert standin["label"] == "stand-in, not OPA"
    assert standin["status"] == "measured"
    for entrypoint in ENTRYPOINTS:
        assert standin[entrypoint]["status"] == "measured"
