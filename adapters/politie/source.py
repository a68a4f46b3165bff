"""The police source: everything the register holds on a subject, categorised.

What it does: finds the subject by name and birth date and answers
`politie.meldingen` with the registrations (optionally bounded by the
period), the deployments, the signals the convenant asks for (seed 004
§5.3) — and, deliberately, everything else the register holds: criminal
antecedents, suspected third parties, investigation data, internal notes.

What it does not: decide what may leave. A real police system hands its
adapter more than the Wpg allows to share; the broker must keep the
criminal, investigation and free-text fields out (R2, R3). Answering them
here is what lets the broker's filter be tested against a realistic source.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import JsonValue

from adapters.politie.records import Persoon, Register, load_register
from adapters.sdk.declarations import FieldDeclaration, build_answer
from adapters.sdk.matching import in_period, is_subject
from broker.adapter_protocol import AdapterAnswer, AdapterQuery, DataCategory

EXCHANGE_TYPE = "politie.meldingen"

FIELDS: tuple[FieldDeclaration, ...] = (
    # What seed 004 §5.3 lets the police share (the convenant's fields).
    FieldDeclaration("meldingen_aantal", DataCategory.nuisance),
    FieldDeclaration("meldingen", DataCategory.nuisance),
    FieldDeclaration("politie_inzet", DataCategory.police_deployment),
    FieldDeclaration("fysiek_geweld_omwonenden", DataCategory.nuisance),
    FieldDeclaration("zware_intimidatie_bedreiging", DataCategory.nuisance),
    FieldDeclaration("bekend_overlast_antecedenten", DataCategory.nuisance_history),
    # Investigation status: the last item above only with the OM's permission.
    FieldDeclaration("lopend_onderzoek", DataCategory.investigation),
    FieldDeclaration("om_toestemming", DataCategory.investigation),
    # What the register holds and must never leave (R2, R3).
    FieldDeclaration("strafrechtelijke_antecedenten", DataCategory.criminal),
    FieldDeclaration("verdachten_derden", DataCategory.criminal),
    FieldDeclaration("onderzoeksgegevens", DataCategory.investigation),
    FieldDeclaration("interne_notitie", DataCategory.free_text),
)


class PolitieSource:
    """A `PartnerSource` over one register extract."""

    def __init__(self, register: Register) -> None:
        self._register = register
        self.declarations: dict[str, tuple[FieldDeclaration, ...]] = {EXCHANGE_TYPE: FIELDS}

    @classmethod
    def from_file(cls, path: Path) -> PolitieSource:
        return cls(load_register(path))

    def answer(self, query: AdapterQuery) -> AdapterAnswer:
        persoon = next(
            (
                p
                for p in self._register.personen
                if is_subject(query.subject, full_name=p.naam.volledig, birth_date=p.geboortedatum)
            ),
            None,
        )
        if persoon is None:
            return build_answer(query, subject_known=False, values={}, declared=FIELDS)
        return build_answer(
            query, subject_known=True, values=_values(persoon, query), declared=FIELDS
        )


def _values(persoon: Persoon, query: AdapterQuery) -> dict[str, JsonValue]:
    registraties = [r for r in persoon.registraties if in_period(r.datum, query.period)]
    inzet: list[JsonValue] = [r.datum.isoformat() for r in registraties if r.inzet.ingezet]
    values: dict[str, JsonValue] = {
        "meldingen_aantal": len(registraties),
        "meldingen": [
            {
                "datum": r.datum.isoformat(),
                "aard": r.incidentsoort,
                "korte_omschrijving": r.korte_omschrijving,
            }
            for r in registraties
        ],
        "politie_inzet": {"aantal": len(inzet), "data": inzet},
        "fysiek_geweld_omwonenden": persoon.signaleringen.fysiek_geweld_omwonenden,
        "zware_intimidatie_bedreiging": persoon.signaleringen.zware_intimidatie_bedreiging,
        "bekend_overlast_antecedenten": persoon.signaleringen.overlast_antecedenten,
        "lopend_onderzoek": persoon.onderzoek.lopend,
        "strafrechtelijke_antecedenten": [
            {"datum": a.datum.isoformat(), "feit": a.feit, "afdoening": a.afdoening}
            for a in persoon.antecedenten
        ],
        "verdachten_derden": [
            {"naam": r.naam, "relatie": r.relatie, "verdenking": r.verdenking}
            for r in persoon.relaties_verdacht
        ],
    }
    if persoon.onderzoek.om_toestemming_delen is not None:
        values["om_toestemming"] = persoon.onderzoek.om_toestemming_delen
    if persoon.onderzoek.gegevens is not None:
        values["onderzoeksgegevens"] = persoon.onderzoek.gegevens
    if persoon.interne_notitie is not None:
        values["interne_notitie"] = persoon.interne_notitie
    return values
