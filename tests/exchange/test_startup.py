"""A starting broker reconciles its log before it serves (broker/services.py).

The embedded deployment: one SQLite log. Alone on it, the broker closes
every open intent (the crashed process was their only writer); beside a
live peer, it closes only those older than the grace period.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.audit.log import AuditLog
from broker.audit.sqlite_store import SqliteAuditStore
from broker.exchange.reconcile import claim_writer
from broker.keys import KeyStore
from broker.services import build_services
from broker.settings import Settings
from tests.exchange.conftest import MovableClock, intent_entry


@pytest.fixture
def settings(tmp_path: Path, keystore: KeyStore) -> Settings:
    return Settings(
        keys_dir=keystore.root,
        sqlite_path=tmp_path / "ketenbroker.sqlite3",
        storage_backend="sqlite",
        cache_backend="memory",
        policy_engine="embedded",
    )


def _log_intents(settings: Settings, keystore: KeyStore, *ages: float) -> None:
    """Intents as a broker killed mid-exchange leaves them, `ages` seconds old."""
    now = datetime.now(UTC)
    store = SqliteAuditStore(settings.sqlite_path)
    audit = AuditLog(
        store=store, signing_key=keystore.signing_key("broker"), clock=MovableClock(now)
    )
    for n, age in enumerate(ages):
        audit.record(intent_entry(f"ex_killed_{n}", time=now - timedelta(seconds=age)))
    store.close()


def test_broker_alone_on_its_log_closes_every_open_intent_at_start(
    settings: Settings, keystore: KeyStore
) -> None:
    _log_intents(settings, keystore, 0.5, 600)
    services = build_services(settings)
    try:
        assert services.reconciled.closed == ["ex_killed_0", "ex_killed_1"]
        assert services.audit.verify().ok
    finally:
        services.close()
    again = build_services(settings)
    try:
        assert again.reconciled.closed == []
    finally:
        again.close()


def test_broker_beside_a_live_peer_leaves_its_in_flight_intent_open(
    settings: Settings, keystore: KeyStore
) -> None:
    _log_intents(settings, keystore, 0.5, 600)
    peer = claim_writer(sqlite_path=settings.sqlite_path)  # a live broker on the same file
    try:
        services = build_services(settings)
        try:
            assert services.reconciled.closed == ["ex_killed_1"]
            assert services.reconciled.left_open == ["ex_killed_0"]
        finally:
            services.close()
    finally:
        peer.close()
