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

from pydantic import Field, model_validator
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

    cache_backend: Literal["memory", "redis"] | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_namespace: str = "ketenbroker"

    policy_engine: Literal["embedded", "opa"] | None = None
    opa_url: str = "http://127.0.0.1:8181"
    policy_timeout_seconds: float = Field(default=2.0, gt=0, le=30)

    # partner id -> base URL of that partner's adapter.
    adapter_urls: dict[str, str] = Field(default_factory=dict)
    adapter_timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    access_token_ttl_seconds: int = Field(default=300, ge=30, le=MAX_ACCESS_TOKEN_TTL_SECONDS)

    # Per partner and per acting user (issue 5 §6); JSON in the environment,
    # e.g. KETENBROKER_RATE_LIMITS='{"partner_exchanges_per_day": 2000}'.
    rate_limits: RateLimits = Field(default_factory=RateLimits)

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
