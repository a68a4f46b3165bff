"""Runtime settings (broker/settings.py): profiles pick backends, bounds hold, typos fail."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from broker.settings import MAX_ACCESS_TOKEN_TTL_SECONDS, PROJECT_ROOT, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KETENBROKER_* variable of the machine running the tests leaks into them."""
    for name in list(os.environ):
        if name.upper().startswith("KETENBROKER_"):
            monkeypatch.delenv(name)


def backends(settings: Settings) -> tuple[str | None, str | None, str | None]:
    return settings.storage_backend, settings.cache_backend, settings.policy_engine


def test_embedded_default_needs_no_services() -> None:
    settings = Settings()
    assert settings.profile == "embedded"
    assert backends(settings) == ("sqlite", "memory", "embedded")
    assert settings.access_token_ttl_seconds == MAX_ACCESS_TOKEN_TTL_SECONDS == 300
    assert settings.convenant_path == PROJECT_ROOT / "convenants" / "lekstroom.yaml"
    assert settings.convenant_path.exists()
    assert settings.policies_dir.is_dir()


@pytest.mark.parametrize(
    ("explicit", "expected"),
    [
        # nothing named: every backend is a service
        ({}, ("postgres", "redis", "opa")),
        # storage named: only storage stays embedded
        ({"storage_backend": "sqlite"}, ("sqlite", "redis", "opa")),
        # cache named
        ({"cache_backend": "memory"}, ("postgres", "memory", "opa")),
        # policy engine named
        ({"policy_engine": "embedded"}, ("postgres", "redis", "embedded")),
        # naming the production choice changes nothing
        ({"storage_backend": "postgres"}, ("postgres", "redis", "opa")),
    ],
)
def test_production_profile_switches_every_backend_not_named(
    explicit: dict[str, Any], expected: tuple[str, str, str]
) -> None:
    assert backends(Settings(profile="production", **explicit)) == expected


@pytest.mark.parametrize(
    ("explicit", "expected"),
    [
        # the embedded profile can still use a service on purpose
        ({"storage_backend": "postgres"}, ("postgres", "memory", "embedded")),
        # or all of them
        (
            {"storage_backend": "postgres", "cache_backend": "redis", "policy_engine": "opa"},
            ("postgres", "redis", "opa"),
        ),
    ],
)
def test_embedded_profile_keeps_backends_that_are_named(
    explicit: dict[str, Any], expected: tuple[str, str, str]
) -> None:
    assert backends(Settings(**explicit)) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        # RFC 9068 / contract.md: at most five minutes
        ("access_token_ttl_seconds", MAX_ACCESS_TOKEN_TTL_SECONDS + 1),
        # a day, as a careless operator might set
        ("access_token_ttl_seconds", 86400),
        # too short to be usable
        ("access_token_ttl_seconds", 29),
        # a policy decision may not wait forever (fail closed quickly)
        ("policy_timeout_seconds", 0),
        # nor half a minute and more
        ("policy_timeout_seconds", 31),
        # an adapter timeout of zero would refuse everything silently
        ("adapter_timeout_seconds", 0),
        # a profile that does not exist
        ("profile", "staging"),
        # a storage backend that does not exist
        ("storage_backend", "mysql"),
        # a cache backend that does not exist
        ("cache_backend", "memcached"),
        # a policy engine that does not exist
        ("policy_engine", "cedar"),
    ],
)
def test_out_of_bounds_setting_is_refused(name: str, value: Any) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings(**{name: value})


@pytest.mark.parametrize(
    "name",
    [
        # a typo of storage_backend
        "storage_backnd",
        # a setting the broker does not have
        "debug",
        # an attempt to raise the token lifetime under another name
        "token_ttl",
    ],
)
def test_unknown_setting_is_refused(name: str) -> None:
    unknown: dict[str, Any] = {name: "x"}
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Settings(**unknown)


def test_settings_cannot_be_changed_after_start() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.access_token_ttl_seconds = 3600
    assert settings.access_token_ttl_seconds == 300


def test_production_profile_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KETENBROKER_PROFILE", "production")
    assert backends(Settings()) == ("postgres", "redis", "opa")
    monkeypatch.setenv("KETENBROKER_CACHE_BACKEND", "memory")
    assert backends(Settings()) == ("postgres", "memory", "opa")


def test_environment_values_are_parsed_and_bounded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KETENBROKER_KEYS_DIR", str(tmp_path))
    monkeypatch.setenv("KETENBROKER_ADAPTER_URLS", '{"politie-lekstroom": "http://127.0.0.1:8502"}')
    settings = Settings()
    assert settings.keys_dir == tmp_path
    assert settings.adapter_urls == {"politie-lekstroom": "http://127.0.0.1:8502"}
    monkeypatch.setenv("KETENBROKER_ACCESS_TOKEN_TTL_SECONDS", "3600")
    with pytest.raises(ValidationError, match="access_token_ttl_seconds"):
        Settings()


def test_explicit_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KETENBROKER_PROFILE", "production")
    assert Settings(profile="embedded").profile == "embedded"
    assert backends(Settings(profile="embedded")) == ("sqlite", "memory", "embedded")
