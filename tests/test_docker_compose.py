"""docker/compose.yaml keeps up with the convenant and keeps its secrets out.

No Docker engine or compose plugin runs on the development machines or CI,
so nothing here starts a container. These tests read the compose file as
YAML and check the invariants that would otherwise drift silently: one
adapter per partner of the convenant, the broker's adapter URLs, health
checks and start order, secrets only from git-ignored key files, and OPA
reading the bundle the broker versions.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from broker.convenant import Convenant
from broker.settings import PROJECT_ROOT

DOCKER = PROJECT_ROOT / "docker"
ONE_SHOT_JOBS = {"opa-bundle"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _partner_ids(convenant: Convenant) -> set[str]:
    return {partner.id for partner in convenant.partners}


def test_one_adapter_service_per_convenant_partner(
    services: dict[str, dict[str, Any]], convenant: Convenant
) -> None:
    adapters = {name.removeprefix("adapter-") for name in services if name.startswith("adapter-")}
    assert adapters == _partner_ids(convenant)
    for partner in adapters:
        service = services[f"adapter-{partner}"]
        command = service["command"]
        assert command[:3] == ["adapter", "--partner", partner]
        assert command[command.index("--port") + 1] == "8500"
        # Each adapter holds its own private key and no other.
        assert [s["target"] for s in service["secrets"]] == [f"/keys/private/{partner}.pem"]


def test_broker_knows_every_adapter_by_its_service_name(
    services: dict[str, dict[str, Any]], convenant: Convenant
) -> None:
    urls = json.loads(services["broker"]["environment"]["KETENBROKER_ADAPTER_URLS"])
    assert urls == {p: f"http://adapter-{p}:8500" for p in _partner_ids(convenant)}


def test_broker_runs_the_production_profile(services: dict[str, dict[str, Any]]) -> None:
    broker = services["broker"]
    assert broker["environment"]["KETENBROKER_PROFILE"] == "production"
    assert broker["environment"]["KETENBROKER_OPA_URL"] == "http://opa:8181"
    assert broker["command"][:2] == ["serve", "--no-adapters"]


def test_every_long_running_service_has_a_healthcheck_and_restart_policy(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if name in ONE_SHOT_JOBS:
            assert service["restart"] == "no", name
            continue
        assert service["healthcheck"]["test"], name
        assert service["restart"] == "unless-stopped", name


def test_services_wait_for_their_dependencies_to_be_healthy(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            expected = (
                "service_completed_successfully"
                if dependency in ONE_SHOT_JOBS
                else "service_healthy"
            )
            assert rule == {"condition": expected}, (name, dependency)
    assert set(services["broker"]["depends_on"]) == set(services) - {"broker"} - ONE_SHOT_JOBS


def test_secrets_come_only_from_git_ignored_key_files(compose: dict[str, Any]) -> None:
    assert "keys/dev/" in (PROJECT_ROOT / ".gitignore").read_text().splitlines()
    for name, secret in compose["secrets"].items():
        assert secret["file"].startswith("../keys/dev/"), name


def test_no_password_or_key_is_written_into_the_file(services: dict[str, dict[str, Any]]) -> None:
    credentials_in_url = re.compile(r"://[^/@\s]+:[^/@\s]+@")
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            assert not credentials_in_url.search(str(value)), (name, key)
            if key.endswith(("PASSWORD", "SECRET", "TOKEN", "KEY")):
                raise AssertionError(f"{name} sets {key} inline; use a secret file")


def test_image_build_context_leaves_keys_out() -> None:
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    # An allow-list: everything is excluded first, keys/ is never allowed back in.
    assert rules[0] == "**"
    assert not [rule for rule in rules if rule.startswith("!") and "keys" in rule]
    dockerfile = (DOCKER / "Dockerfile").read_text()
    copies = [line for line in dockerfile.splitlines() if line.startswith("COPY")]
    assert not [line for line in copies if "keys" in line or line.split()[1] == "."]


def test_containers_never_run_as_root(services: dict[str, dict[str, Any]]) -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert "\nUSER 10001:10001\n" in dockerfile
    # Compose may pick the uid that owns keys/dev/ (docker/README.md), with the
    # image's unprivileged user as the default; nothing names root.
    allowed = {None, "${KETENBROKER_UID:-10001}:${KETENBROKER_GID:-10001}"}
    for name, service in services.items():
        if "build" in service:
            assert service.get("user") in allowed, name


def test_opa_reads_the_bundle_the_broker_versions(services: dict[str, dict[str, Any]]) -> None:
    job, opa = services["opa-bundle"], services["opa"]
    assert job["entrypoint"] == ["python", "-m", "broker.policy.opa", "/bundle"]
    assert "opa-bundle:/bundle" in job["volumes"]
    assert opa["image"].startswith("openpolicyagent/opa:1.")
    assert opa["command"][opa["command"].index("--bundle") + 1] == "/bundle"
    assert opa["volumes"] == ["opa-bundle:/bundle:ro"]


def test_only_the_broker_is_published_and_only_on_loopback(
    services: dict[str, dict[str, Any]],
) -> None:
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert published == {"broker": ["127.0.0.1:8400:8400"]}
