"""The municipality's case system as it holds it (zaaksysteem with a social-domain link).

Dates are `YYYYMMDD`, as in the BRP and many municipal systems; they are
parsed to dates at this edge. The shape is the gemeente's own: cases with
decisions, the mayor's 151d order, the social-domain record, notes.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict


def _yyyymmdd(value: object) -> object:
    if isinstance(value, str) and len(value) == 8 and value.isdigit():
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    return value


Datum = Annotated[date, BeforeValidator(_yyyymmdd)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Besluit(_Record):
    datum: Datum
    besluittype: str
    kenmerk: str


class Zaak(_Record):
    zaaknummer: str
    zaaktype: str
    besluiten: tuple[Besluit, ...]


class Gedragsaanwijzing(_Record):
    opgelegd: bool
    datum: Datum | None


class Uitkering(_Record):
    uitkering: str
    bedrag_per_maand: float
    sinds: Datum


class Wmo(_Record):
    voorziening: str
    grondslag: str
    sinds: Datum


class Schuldhulp(_Record):
    status: str
    schuldenlast_euro: float
    aangemeld: Datum


class SociaalDomein(_Record):
    participatiewet: Uitkering | None
    wmo: Wmo | None
    schuldhulpverlening: Schuldhulp | None


class Aantekening(_Record):
    datum: Datum
    auteur: str
    tekst: str


class Betrokkene(_Record):
    relatie_id: str
    geslachtsnaam: str
    voorvoegsel: str | None
    voornamen: str
    geboortedatum: Datum
    zaken: tuple[Zaak, ...]
    gedragsaanwijzing_151d: Gedragsaanwijzing
    sociaal_domein: SociaalDomein
    aantekeningen: tuple[Aantekening, ...]

    @property
    def volledige_naam(self) -> str:
        return " ".join(p for p in (self.voornamen, self.voorvoegsel, self.geslachtsnaam) if p)


class Zaaksysteem(_Record):
    bron: str
    peildatum: Datum
    betrokkenen: tuple[Betrokkene, ...]


def load_zaaksysteem(path: Path) -> Zaaksysteem:
    return Zaaksysteem.model_validate_json(path.read_bytes())
