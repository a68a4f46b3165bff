"""The police register as the police system holds it (a BVH-style person extract).

Parsed into typed models at the edge (style.md: no dict plumbing); the shape
is the police's own, not the convenant's: registrations with incident kinds
and deployments, signals, investigations, antecedents, suspected relations.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Naam(_Record):
    voornamen: str
    voorvoegsel: str | None
    achternaam: str

    @property
    def volledig(self) -> str:
        return " ".join(p for p in (self.voornamen, self.voorvoegsel, self.achternaam) if p)


class Adres(_Record):
    straat: str
    huisnummer: int
    toevoeging: str | None
    postcode: str
    plaats: str


class Inzet(_Record):
    ingezet: bool
    eenheden: int


class Registratie(_Record):
    registratienummer: str
    tijdstip: datetime
    incidentsoort: str
    korte_omschrijving: str
    melder: str
    inzet: Inzet

    @property
    def datum(self) -> date:
        # The local date the police registered it (tijdstip carries its zone).
        return self.tijdstip.date()


class Signaleringen(_Record):
    fysiek_geweld_omwonenden: bool
    zware_intimidatie_bedreiging: bool
    overlast_antecedenten: bool


class Onderzoek(_Record):
    lopend: bool
    om_toestemming_delen: bool | None
    gegevens: str | None


class Antecedent(_Record):
    datum: date
    feit: str
    afdoening: str


class RelatieVerdacht(_Record):
    naam: str
    relatie: str
    verdenking: str


class Persoon(_Record):
    persoons_id: str
    naam: Naam
    geboortedatum: date
    woonadres: Adres
    registraties: tuple[Registratie, ...]
    signaleringen: Signaleringen
    onderzoek: Onderzoek
    antecedenten: tuple[Antecedent, ...]
    relaties_verdacht: tuple[RelatieVerdacht, ...]
    interne_notitie: str | None


class Register(_Record):
    bron: str
    peildatum: date
    personen: tuple[Persoon, ...]


def load_register(path: Path) -> Register:
    return Register.model_validate_json(path.read_bytes())
