"""The dependency probe: a hanging ping is down, and is not asked again while it hangs."""

from __future__ import annotations

import threading

import pytest

from broker.dependency_health import DependencyProbe
from broker.errors import CacheUnavailableError
from broker.metrics import Metrics

# Long enough for a thread to start and answer; the probe returns at the latest then.
BOUND_SECONDS = 2.0


def test_hanging_and_failing_pings_are_down_and_never_pile_up() -> None:
    release = threading.Event()
    calls = {"hanging": 0}

    def hanging() -> None:
        calls["hanging"] += 1
        release.wait(30)  # bounded even if the test fails before releasing it

    def failing() -> None:
        raise CacheUnavailableError("expected PONG, got a refused connection")

    metrics = Metrics()
    probe = DependencyProbe(
        pings={"audit": lambda: None, "cache": failing, "policy": hanging},
        metrics=metrics,
        timeout_seconds=BOUND_SECONDS,
    )
    try:
        first = probe.probe()
        second = probe.probe()
        assert first == second == {"audit": True, "cache": False, "policy": False}
        # The first ping still hangs: the second probe did not start another.
        assert calls["hanging"] == 1
        text = metrics.render().decode()
        assert 'ketenbroker_dependency_up{dependency="policy"} 0.0' in text
        assert 'ketenbroker_dependency_up{dependency="audit"} 1.0' in text
    finally:
        release.set()
        probe.close()


def test_no_dependencies_is_not_all_up() -> None:
    with pytest.raises(ValueError, match="at least one"):
        DependencyProbe(pings={}, metrics=Metrics(), timeout_seconds=1.0)
