"""The gemeente source: administrative measures, and everything else the case system holds.

What it does: finds the subject by name and birth date and answers
`gemeente.maatregelen` with the decisions taken against them (optionally
bounded by the period), the 151d behaviour order and the number of warning
letters — and, deliberately, the social-domain record the case system links
to (benefit, Wmo care, debt counselling) and the caseworkers' notes.

What it does not: decide what may leave. Income and health data never flow
(R2, seed 002 §5.2); the broker filters them. Answering them here is what
lets that filter be tested against a realistic source.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import JsonValue

from adapters.gemeente.records import Betrokkene, Zaaksysteem, load_zaaksysteem
from adapters.sdk.declarations import FieldDeclaration, build_answer
from adapters.sdk.matching import in_period, is_subject
from broker.adapter_protocol import AdapterAnswer, AdapterQuery, DataCategory

EXCHANGE_TYPE = "gemeente.maatregelen"
WAARSCHUWINGSBRIEF = "waarschuwingsbrief"

FIELDS: tuple[FieldDeclaration, ...] = (
    # The convenant's fields (seed 002 Bijlage E, the enforcement matrix).
    FieldDeclaration("maatregelen", DataCategory.enforcement),
    FieldDeclaration("gedragsaanwijzing_151d", DataCategory.enforcement),
    FieldDeclaration("waarschuwingsbrieven_aantal", DataCategory.enforcement),
    # Held by the linked social-domain record; never to flow (R2).
    FieldDeclaration("bijstandsuitkering", DataCategory.financial),
    FieldDeclaration("wmo_indicatie", DataCategory.health),
    FieldDeclaration("schuldhulp", DataCategory.financial),
    FieldDeclaration("notities", DataCategory.free_text),
)


class GemeenteSource:
    """A `PartnerSource` over one case-system export."""

    def __init__(self, zaaksysteem: Zaaksysteem) -> None:
        self._zaaksysteem = zaaksysteem
        self.declarations: dict[str, tuple[FieldDeclaration, ...]] = {EXCHANGE_TYPE: FIELDS}

    @classmethod
    def from_file(cls, path: Path) -> GemeenteSource:
        return cls(load_zaaksysteem(path))

    def answer(self, query: AdapterQuery) -> AdapterAnswer:
        betrokkene = next(
            (
                b
                for b in self._zaaksysteem.betrokkenen
                if is_subject(query.subject, full_name=b.volledige_naam, birth_date=b.geboortedatum)
            ),
            None,
        )
        if betrokkene is None:
            return build_answer(query, subject_known=False, values={}, declared=FIELDS)
        return build_answer(
            query, subject_known=True, values=_values(betrokkene, query), declared=FIELDS
        )


def _values(betrokkene: Betrokkene, query: AdapterQuery) -> dict[str, JsonValue]:
    besluiten = sorted(
        (
            b
            for zaak in betrokkene.zaken
            for b in zaak.besluiten
            if in_period(b.datum, query.period)
        ),
        key=lambda b: b.datum,
    )
    values: dict[str, JsonValue] = {
        "maatregelen": [{"datum": b.datum.isoformat(), "soort": b.besluittype} for b in besluiten],
        "gedragsaanwijzing_151d": betrokkene.gedragsaanwijzing_151d.opgelegd,
        "waarschuwingsbrieven_aantal": sum(
            1 for b in besluiten if b.besluittype == WAARSCHUWINGSBRIEF
        ),
        "notities": [
            {"datum": a.datum.isoformat(), "tekst": a.tekst}
            for a in betrokkene.aantekeningen
            if in_period(a.datum, query.period)
        ],
    }
    sociaal = betrokkene.sociaal_domein
    if sociaal.participatiewet is not None:
        values["bijstandsuitkering"] = {
            "uitkering": sociaal.participatiewet.uitkering,
            "bedrag_per_maand": sociaal.participatiewet.bedrag_per_maand,
            "sinds": sociaal.participatiewet.sinds.isoformat(),
        }
    if sociaal.wmo is not None:
        values["wmo_indicatie"] = {
            "voorziening": sociaal.wmo.voorziening,
            "grondslag": sociaal.wmo.grondslag,
            "sinds": sociaal.wmo.sinds.isoformat(),
        }
    if sociaal.schuldhulpverlening is not None:
        values["schuldhulp"] = {
            "status": sociaal.schuldhulpverlening.status,
            "schuldenlast_euro": sociaal.schuldhulpverlening.schuldenlast_euro,
            "aangemeld": sociaal.schuldhulpverlening.aangemeld.isoformat(),
        }
    return values
