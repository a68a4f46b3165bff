"""The broker app built from the environment, for uvicorn's worker processes.

What it does: `create_app_from_environment()` reads `Settings` from the
`KETENBROKER_*` variables and returns `create_app(settings)`. With
`ketenbroker serve --workers N`, uvicorn spawns N processes and calls this
factory once in each (`factory=True`), so every worker builds its own
services (its own PostgreSQL connections, Redis clients and policy engine,
and its own start-up reconciliation, safe when several start at once:
`broker.exchange.reconcile`) and its own logging.

What it does not: decide whether several workers are safe together. That
is `broker.cli`, which refuses more than one worker unless the audit log and
case register live in PostgreSQL and the replay cache and rate limits in
Redis; with an in-process cache each worker would accept a `jti` another
worker has already seen.

Why a factory: spawned workers import the app by name, and an app built at
import time would be the import-time singleton style.md §4 rules out.
"""

from __future__ import annotations

from fastapi import FastAPI

from broker.api.app import create_app
from broker.logging_setup import configure_logging
from broker.settings import Settings

# What `uvicorn.run(..., factory=True)` imports in each worker.
FACTORY_PATH = "broker.api.factory:create_app_from_environment"


def create_app_from_environment() -> FastAPI:
    """`create_app` with settings from the environment; the app owns (and closes) its services."""
    settings = Settings()
    # A spawned worker inherits no logging set-up (uvicorn runs with log_config=None).
    configure_logging(settings)
    return create_app(settings)
