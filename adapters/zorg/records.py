"""A care organisation's client register as it holds it.

The shape is the care party's own: clients with care trajectories (each with
a care worker, a request for help, diagnosis and plan, sometimes
medication) and progress reports. `organisatie.soort` says which kind of
care party this register belongs to (buurtteam, ggd); it picks the
exchange type the adapter serves.
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


def load_register(path: Path) -> Clientregister:
    return Clientregister.model_validate_json(path.read_bytes())
