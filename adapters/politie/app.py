"""The police adapter app: `build_app` wires the register extract into the SDK edge."""

from __future__ import annotations

from pathlib import Path

from adapters.politie.source import PolitieSource
from adapters.sdk.partner_app import app_builder

DATA_DIR = Path(__file__).resolve().parent / "data"


build_app = app_builder(DATA_DIR, PolitieSource.from_file)
