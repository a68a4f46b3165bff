"""A whole exchange network on loopback: the broker plus every partner's adapter.

`make demo`, `ketenbroker serve --with-adapters` and the end-to-end tests
all start the same thing: one adapter per partner of the convenant and the
broker, each a real HTTP server on 127.0.0.1, talking real HTTP to each
other. Nothing here is a test double; it is the embedded deployment.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from adapters.registry import adapter_for_partner
from adapters.runner import RunningServer, start_server
from broker.api.app import create_app
from broker.audit.store import AuditStore
from broker.clock import Clock, SystemClock
from broker.convenant import load_convenant
from broker.keys import KeyStore
from broker.policy.engine import PolicyEngine
from broker.services import Services, build_services
from broker.settings import Settings

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port free right now; the broker must know its URL (its issuer) before it starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalStack:
    broker_url: str
    adapter_urls: dict[str, str]
    services: Services
    settings: Settings
    _servers: list[RunningServer] = field(default_factory=list)

    def stop(self) -> None:
        errors = []
        for server in reversed(self._servers):
            try:
                server.stop()
            except RuntimeError as e:
                errors.append(e)
        self._servers.clear()
        self.services.close()
        if errors:
            raise errors[0]

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_adapters(
    settings: Settings, *, issuer: str, ports: dict[str, int] | None = None
) -> tuple[dict[str, str], list[RunningServer]]:
    convenant = load_convenant(settings.convenant_path)
    keys = KeyStore(settings.keys_dir)
    urls: dict[str, str] = {}
    servers: list[RunningServer] = []
    try:
        for partner in convenant.partners:
            kind = adapter_for_partner(convenant, partner.id)
            app = kind.build_app(partner_id=partner.id, keys=keys, broker_issuer=issuer)
            server = start_server(app, host=LOOPBACK, port=(ports or {}).get(partner.id, 0))
            servers.append(server)
            urls[partner.id] = server.url
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return urls, servers


def start_local_stack(
    *,
    base: dict[str, Any] | None = None,
    broker_port: int | None = None,
    adapter_ports: dict[str, int] | None = None,
    clock: Clock | None = None,
    audit_store: AuditStore | None = None,
    policy: PolicyEngine | None = None,
) -> LocalStack:
    """Start every adapter, then the broker wired to them; all on loopback."""
    port = broker_port or free_port()
    issuer = f"http://{LOOPBACK}:{port}"
    settings = Settings(**{**(base or {}), "issuer": issuer})
    adapter_urls, servers = start_adapters(settings, issuer=issuer, ports=adapter_ports)
    try:
        settings = Settings(**{**(base or {}), "issuer": issuer, "adapter_urls": adapter_urls})
        services = build_services(
            settings, clock=clock or SystemClock(), audit_store=audit_store, policy=policy
        )
        broker = start_server(create_app(settings, services=services), host=LOOPBACK, port=port)
    except BaseException:
        for server in servers:
            server.stop()
        raise
    servers.append(broker)
    return LocalStack(
        broker_url=broker.url,
        adapter_urls=adapter_urls,
        services=services,
        settings=settings,
        _servers=servers,
    )
