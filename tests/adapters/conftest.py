"""Adapter servers on loopback, one per partner, shared by a test module."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from adapters.registry import ADAPTERS
from adapters.runner import RunningServer, start_server
from broker.keys import KeyStore
from tests.adapters.helpers import ISSUER


@pytest.fixture(scope="module")
def adapter_server(keystore: KeyStore) -> Iterator[Callable[[str, str], RunningServer]]:
    """`adapter_server(kind, partner_id)`: that partner's adapter, started once per module."""
    servers: dict[tuple[str, str], RunningServer] = {}

    def get(kind: str, partner_id: str) -> RunningServer:
        if (kind, partner_id) not in servers:
            app = ADAPTERS[kind].build_app(
                partner_id=partner_id, keys=keystore, broker_issuer=ISSUER
            )
            servers[kind, partner_id] = start_server(app)
        return servers[kind, partner_id]

    yield get
    for server in servers.values():
        server.stop()
