"""Runtime settings, read from `KETENBROKER_*` environment variables.

Two profiles: `embedded` (the default; SQLite, in-process replay cache,
regopy) runs with no services at all, for `make demo` and development;
`production` switches every backend to PostgreSQL, Redis and an OPA server
unless a setting names another one explicitly.

Settings are built by whoever starts the broker (`create_app(settings)`),
never at import time (style.md §4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from broker.ratelimit.policy import RateLimits

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# RFC 9068 / contract.md: access tokens live at most five minutes.
MAX_ACCESS_TOKEN_TTL_SECONDS = 300


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KETENBROKER_", extra="forbid", frozen=True)

    profile: Literal["embedded", "production"] = "embedded"
    # The broker's public base URL: OAuth issuer and the access tokens' audience.
    issuer: str = "http://127.0.0.1:8400"
    convenant_path: Path = PROJECT_ROOT / "convenants" / "lekstroom.yaml"
    keys_dir: Path = PROJECT_ROOT / "keys" / "dev"
    policies_dir: Path = PROJECT_ROOT / "policies"

    storage_backend: Literal["sqlite", "postgres"] | None = None
    sqlite_path: Path = PROJECT_ROOT / "var" / "ketenbroker.sqlite3"
    postgres_dsn: str = "postgresql://postgres@127.0.0.1:5432/ketenbroker"
    # Concurrent audit records share one commit (one fsync); see broker/audit/group_commit.py.
    audit_group_commit: bool = True
    audit_max_batch: int = Field(default=256, ge=1, le=4096)

    cache_backend: Literal["memory", "redis"] | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_namespace: str = "ketenbroker"

    policy_engine: Literal["embedded", "opa"] | None = None
    opa_url: str = "http://127.0.0.1:8181"
    policy_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    # The signed OPA bundle both engines serve (broker/policy/bundle.py), made by
    # `ketenbroker policy bundle`. Unset sign-at-start means: the embedded
    # profile signs the bundle in memory at start from policies_dir with the
    # keys_dir policy-signer key; production loads only the file (docs/decisions.md).
    policy_bundle_path: Path = PROJECT_ROOT / "var" / "policy-bundle.tar.gz"
    policy_bundle_sign_at_start: bool | None = None

    # partner id -> base URL of that partner's adapter.
    adapter_urls: dict[str, str] = Field(default_factory=dict)
    adapter_timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    access_token_ttl_seconds: int = Field(default=300, ge=30, le=MAX_ACCESS_TOKEN_TTL_SECONDS)

    # Per partner and per acting user (issue 5 §6); JSON in the environment,
    # e.g. KETENBROKER_RATE_LIMITS='{"partner_exchanges_per_day": 2000}'.
    rate_limits: RateLimits = Field(default_factory=RateLimits)

    # Operations (docs/operations.md). `auto` logs JSON lines in the
    # production profile and readable text otherwise.
    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Unset: GET /metrics answers loopback clients only. Set: any client
    # that sends `Authorization: Bearer <metrics_token>`, and no one else.
    # 16 characters at least: `openssl rand -hex 32` gives 64.
    metrics_token: SecretStr | None = Field(default=None, min_length=16, max_length=256)

    @model_validator(mode="after")
    def _profile_defaults(self) -> Settings:
        production = self.profile == "production"
        if self.storage_backend is None:
            object.__setattr__(self, "storage_backend", "postgres" if production else "sqlite")
        if self.cache_backend is None:
            object.__setattr__(self, "cache_backend", "redis" if production else "memory")
        if self.policy_engine is None:
            object.__setattr__(self, "policy_engine", "opa" if production else "embedded")
        return self
