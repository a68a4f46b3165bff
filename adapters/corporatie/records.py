"""A housing corporation's tenancy records as its ERP exports them.

Dates are `DD-MM-YYYY`, as the ERP shows them; parsed to dates at this edge.
One file per corporation, same software, so one schema. The shape is the
landlord's own: contracts per dwelling unit (VHE) with contract parties, a
nuisance file, the financial position and staff notes.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict


def _dd_mm_yyyy(value: object) -> object:
    if isinstance(value, str) and len(value) == 10 and value[2] == value[5] == "-":
        return date(int(value[6:]), int(value[3:5]), int(value[:2]))
    return value


Datum = Annotated[date, BeforeValidator(_dd_mm_yyyy)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Vhe(_Record):
    """A verhuureenheid: the rented dwelling unit."""

    vhe_nummer: str
    straat: str
    huisnummer: int
    toevoeging: str | None
    postcode: str
    plaats: str


class Contractpartij(_Record):
    relatienummer: str
    voornaam: str
    achternaam: str
    geboortedatum: Datum

    @property
    def volledige_naam(self) -> str:
        return f"{self.voornaam} {self.achternaam}"


class Gebeurtenis(_Record):
    datum: Datum
    soort: str


class Overlastdossier(_Record):
    meldingen: tuple[Gebeurtenis, ...]
    maatregelen: tuple[Gebeurtenis, ...]
    gedragsaanwijzing: bool
    laatste_kans_contract: bool
    ontruimingsprocedure: bool


class Inkomen(_Record):
    bron: str
    netto_per_maand: float
    geverifieerd: Datum


class Betalingsregeling(_Record):
    afgesproken: Datum
    termijn_euro: float
    status: str


class Financieel(_Record):
    huurachterstand_euro: float
    inkomen: Inkomen | None
    betalingsregeling: Betalingsregeling | None


class Notitie(_Record):
    datum: Datum
    medewerker: str
    tekst: str


class Huurcontract(_Record):
    contractnummer: str
    vhe: Vhe
    ingangsdatum: Datum
    contractsoort: str
    contractpartijen: tuple[Contractpartij, ...]
    overlastdossier: Overlastdossier
    financieel: Financieel
    notities: tuple[Notitie, ...]


class ErpExport(_Record):
    corporatie: str
    bron: str
    peildatum: date
    huurcontracten: tuple[Huurcontract, ...]


def load_export(path: Path) -> ErpExport:
    return ErpExport.model_validate_json(path.read_bytes())
