"""The gemeente adapter app: `build_app` wires the case-system export into the SDK edge."""

from __future__ import annotations

from pathlib import Path

from adapters.gemeente.source import GemeenteSource
from adapters.sdk.partner_app import app_builder

DATA_DIR = Path(__file__).resolve().parent / "data"


build_app = app_builder(DATA_DIR, GemeenteSource.from_file)
