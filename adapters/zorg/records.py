"""A care organisation's client register as it holds it.

The shape is the care party's own: clients with care trajectories (each with
a care worker, a request for help, diagnosis and plan, sometimes
medication) and progress reports. `organisatie.soort` says which kind of
care party this register belongs to (buurtteam, ggd); it picks the
exchange type the adapter serves. Every zorg data file starts with that
`organisatie`, whatever its shape: `register_soort` reads it so the app can
pick the right model (a buurtbemiddeling register holds mediation dossiers,
adapters.zorg.bemiddeling_records).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Organisatie(_Record):
    naam: str
    # As broker.convenant.model: a partner function is a narrow identifier.
    soort: str = Field(pattern=r"^[a-z][a-z_]{1,31}$")


class Hulpverlener(_Record):
    naam: str
    functie: str


class Traject(_Record):
    start: date
    einde: date | None
    hulpverlener: Hulpverlener
    hulpvraag: str
    diagnose: str | None
    behandelplan: str | None
    medicatie: str | None = None


class Rapportage(_Record):
    datum: date
    tekst: str


class Client(_Record):
    clientnummer: str
    naam: str
    geboortedatum: date
    trajecten: tuple[Traject, ...]
    rapportages: tuple[Rapportage, ...]


class Clientregister(_Record):
    organisatie: Organisatie
    bron: str
    peildatum: date
    clienten: tuple[Client, ...]


class _RegisterHeader(BaseModel):
    # Only the header: the rest of the file is validated by the model its soort picks.
    model_config = ConfigDict(extra="ignore", frozen=True)

    organisatie: Organisatie


def register_soort(raw: bytes) -> str:
    """The `organisatie.soort` of a zorg data file, validated; the rest is not read."""
    return _RegisterHeader.model_validate_json(raw).organisatie.soort


def parse_register(raw: bytes) -> Clientregister:
    return Clientregister.model_validate_json(raw)


def load_register(path: Path) -> Clientregister:
    return parse_register(path.read_bytes())
