"""A buurtbemiddeling organisation's dossier register as it holds it.

What it is: the mediation service's own shape. Each dossier is one
mediation between neighbours: who registered it and who the other party
is (names and birth dates of both), when it was registered and ended, its
status, the volunteer mediator, the agreements reached and the reports of
the talks. A person appears in a dossier as one of its parties; there is
no register of persons apart from the dossiers.

What it is not: a client register (adapters.zorg.records). Mediation holds
no care trajectories, but its talk reports can still speak of health or
other personal circumstances, which is why they never flow (R2, R4).

Why the checks: a status that says the mediation ended must have an end
date and a running one must not, so the period filter in the source can
trust the dates; a dossier has at least two parties, because mediation is
between neighbours.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapters.zorg.records import Organisatie

# The soort of a register in this shape (`organisatie.soort`), as the
# convenant names the partner function.
BEMIDDELING_SOORT = "buurtbemiddeling"

Status = Literal["intake", "gesprekken lopen", "afgerond met afspraken", "afgebroken"]
OPEN_STATUSES: frozenset[str] = frozenset({"intake", "gesprekken lopen"})


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Partij(_Record):
    naam: str
    geboortedatum: date
    # Mediation's own words: it takes no side, so no melder or overlastgever.
    rol: Literal["aanmelder", "andere partij"]


class Gespreksverslag(_Record):
    datum: date
    tekst: str


class Dossier(_Record):
    dossiernummer: str
    aanmelddatum: date
    einddatum: date | None
    status: Status
    partijen: tuple[Partij, ...] = Field(min_length=2)
    bemiddelaar: str
    afspraken: tuple[str, ...]
    gespreksverslagen: tuple[Gespreksverslag, ...]

    @model_validator(mode="after")
    def _dates_match_status(self) -> Dossier:
        running = self.status in OPEN_STATUSES
        if running and self.einddatum is not None:
            raise ValueError(f"{self.dossiernummer}: status {self.status!r} has no einddatum")
        if not running and self.einddatum is None:
            raise ValueError(f"{self.dossiernummer}: status {self.status!r} needs an einddatum")
        if self.einddatum is not None and self.einddatum < self.aanmelddatum:
            raise ValueError(f"{self.dossiernummer}: einddatum before aanmelddatum")
        return self


class Bemiddelingsregister(_Record):
    organisatie: Organisatie
    bron: str
    peildatum: date
    dossiers: tuple[Dossier, ...]

    @model_validator(mode="after")
    def _is_mediation(self) -> Bemiddelingsregister:
        if self.organisatie.soort != BEMIDDELING_SOORT:
            raise ValueError(
                f"expected organisatie.soort {BEMIDDELING_SOORT!r}, got {self.organisatie.soort!r}"
            )
        return self


def parse_register(raw: bytes) -> Bemiddelingsregister:
    return Bemiddelingsregister.model_validate_json(raw)


def load_register(path: Path) -> Bemiddelingsregister:
    return parse_register(path.read_bytes())
