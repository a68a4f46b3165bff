"""Wiring a partner's source into an adapter app from a key folder and a fixture file.

What it does: `build_partner_app` takes a source that declares its fields,
loads this partner's signing key and the broker's pinned public keys from a
`KeyStore`, and calls `create_adapter_app`. `fixture_path` finds a partner's
data file in an adapter package's `data/` folder.

What it does not: choose the adapter kind (adapters.registry does) or read
the data (each adapter's `source.py` does).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from fastapi import FastAPI

from adapters.sdk.app import ReplayCache, create_adapter_app
from adapters.sdk.declarations import FieldDeclaration
from broker.adapter_protocol import AdapterAnswer, AdapterQuery
from broker.clock import Clock, SystemClock
from broker.keys import KeyStore

# The broker's principal name in every key folder (broker.keys, tests/conftest.py).
BROKER_PRINCIPAL = "broker"

# As broker.convenant.model.IDENTIFIER: a partner id becomes a file name, so
# no dots-and-slashes can walk out of the data folder.
_PARTNER_ID = re.compile(r"^[a-z][a-z0-9_-]{1,63}$")


class DeclaringSource(Protocol):
    """A PartnerSource that also states what it can answer."""

    @property
    def declarations(self) -> Mapping[str, Sequence[FieldDeclaration]]: ...

    def answer(self, query: AdapterQuery) -> AdapterAnswer: ...


def fixture_path(data_dir: Path, partner_id: str) -> Path:
    """`data_dir/<partner_id>.json`; raise FileNotFoundError when this partner has none."""
    if not _PARTNER_ID.match(partner_id):
        raise ValueError(
            f"expected a partner id matching {_PARTNER_ID.pattern}, got {partner_id!r}"
        )
    path = data_dir / f"{partner_id}.json"
    if not path.is_file():
        raise FileNotFoundError(f"expected a fixture for {partner_id!r} at {path}, found none")
    return path


def build_partner_app(
    *,
    partner_id: str,
    source: DeclaringSource,
    keys: KeyStore,
    broker_issuer: str,
    clock: Clock | None = None,
    replay_cache: ReplayCache | None = None,
) -> FastAPI:
    return create_adapter_app(
        partner_id=partner_id,
        source=source,
        declarations=source.declarations,
        signing_key=keys.signing_key(partner_id),
        broker_keys=keys.public_keyset(BROKER_PRINCIPAL),
        broker_issuer=broker_issuer,
        clock=clock if clock is not None else SystemClock(),
        replay_cache=replay_cache,
    )


class BuildApp(Protocol):
    """How the registry, the CLI and the local stack build one partner's adapter app."""

    def __call__(
        self,
        *,
        partner_id: str,
        keys: KeyStore,
        broker_issuer: str,
        clock: Clock | None = None,
        data_path: Path | None = None,
    ) -> FastAPI: ...


def app_builder(data_dir: Path, load_source: Callable[[Path], DeclaringSource]) -> BuildApp:
    """A `build_app` for an adapter kind: its partners' files live in `data_dir`."""

    def build_app(
        *,
        partner_id: str,
        keys: KeyStore,
        broker_issuer: str,
        clock: Clock | None = None,
        data_path: Path | None = None,
    ) -> FastAPI:
        source = load_source(data_path or fixture_path(data_dir, partner_id))
        return build_partner_app(
            partner_id=partner_id,
            source=source,
            keys=keys,
            broker_issuer=broker_issuer,
            clock=clock,
        )

    return build_app
