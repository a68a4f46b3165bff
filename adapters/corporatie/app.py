"""The corporatie adapter app: `build_app` wires one corporation's ERP export into the SDK edge."""

from __future__ import annotations

from pathlib import Path

from adapters.corporatie.source import CorporatieSource
from adapters.sdk.partner_app import app_builder

DATA_DIR = Path(__file__).resolve().parent / "data"


build_app = app_builder(DATA_DIR, CorporatieSource.from_file)
