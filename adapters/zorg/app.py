"""The zorg adapter app: `build_app` wires one care party's client register into the SDK edge."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from adapters.sdk.partner_app import build_partner_app, fixture_path
from adapters.zorg.source import ZorgSource
from broker.clock import Clock
from broker.keys import KeyStore

DATA_DIR = Path(__file__).resolve().parent / "data"


def build_app(
    *,
    partner_id: str,
    keys: KeyStore,
    broker_issuer: str,
    clock: Clock | None = None,
    data_path: Path | None = None,
) -> FastAPI:
    source = ZorgSource.from_file(data_path or fixture_path(DATA_DIR, partner_id))
    return build_partner_app(
        partner_id=partner_id, source=source, keys=keys, broker_issuer=broker_issuer, clock=clock
    )
