"""The buurtbemiddeling source: whether a person is in mediation, and everything the dossier holds.

What it does: answers `buurtbemiddeling.terugkoppeling` for a subject who
is a party to a mediation dossier that overlaps the period: that they are
registered, the dossier's status and the agreements reached (the
convenant's fields) — and, deliberately, the names of all parties, the
mediator, the dossier number, the registration date and the reports of the
talks within the period, which may speak of health or other personal
circumstances. With several dossiers in the period, the latest registered
one answers.

What it does not: decide what may leave. Seed 002 §5.3 (R4): buurtbemiddeling
gives no content feedback unless both melder and overlastgever consent; the
broker's policy checks that consent on the case, withholds the fields the
convenant does not list (the other party's name, the reports) and scans the
agreements for special-category text (R2). An unknown person, or one whose
mediation lies outside the period, is answered as `subject_known: false`
with `aangemeld_bij_bemiddeling: false`, the one fact the question asks.

Why declared this way: each field carries the category of what it really
holds, so the broker's filter works on the truth. The other party's name is
identity data of someone who is not the subject; the reports are free text
that must never flow; the mediator's name is care-relation data the
convenant does not ask for here.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import JsonValue

from adapters.sdk.declarations import FieldDeclaration, build_answer
from adapters.sdk.matching import in_period, is_subject, overlaps_period
from adapters.zorg.bemiddeling_records import (
    BEMIDDELING_SOORT,
    Bemiddelingsregister,
    Dossier,
    load_register,
)
from broker.adapter_protocol import AdapterAnswer, AdapterQuery, DataCategory, QuerySubject

EXCHANGE_TYPE = f"{BEMIDDELING_SOORT}.terugkoppeling"

FIELDS: tuple[FieldDeclaration, ...] = (
    # The convenant's fields; status and agreements only with both parties'
    # consent (seed 002 §5.3), which the broker enforces.
    FieldDeclaration("aangemeld_bij_bemiddeling", DataCategory.care_relation),
    FieldDeclaration("bemiddeling_status", DataCategory.care_relation),
    FieldDeclaration("afspraken", DataCategory.free_text),
    # Held in the dossier; never to flow (R1, R2, R4).
    FieldDeclaration("dossiernummer", DataCategory.care_relation),
    FieldDeclaration("aanmelddatum", DataCategory.care_relation),
    FieldDeclaration("partijen", DataCategory.identity),
    FieldDeclaration("bemiddelaar", DataCategory.care_relation),
    FieldDeclaration("gespreksverslagen", DataCategory.free_text),
)


def _is_party(dossier: Dossier, subject: QuerySubject) -> bool:
    return any(
        is_subject(subject, full_name=p.naam, birth_date=p.geboortedatum) for p in dossier.partijen
    )


class BemiddelingSource:
    """A `PartnerSource` over one buurtbemiddeling organisation's dossier register."""

    exchange_type = EXCHANGE_TYPE

    def __init__(self, register: Bemiddelingsregister) -> None:
        self._register = register
        self.declarations: dict[str, tuple[FieldDeclaration, ...]] = {EXCHANGE_TYPE: FIELDS}

    @classmethod
    def from_file(cls, path: Path) -> BemiddelingSource:
        return cls(load_register(path))

    def answer(self, query: AdapterQuery) -> AdapterAnswer:
        dossiers = [
            d
            for d in self._register.dossiers
            if _is_party(d, query.subject)
            and overlaps_period(d.aanmelddatum, d.einddatum, query.period)
        ]
        if not dossiers:
            return build_answer(
                query,
                subject_known=False,
                values={"aangemeld_bij_bemiddeling": False},
                declared=FIELDS,
            )
        latest = max(dossiers, key=lambda d: d.aanmelddatum)
        return build_answer(
            query, subject_known=True, values=_values(latest, query), declared=FIELDS
        )


def _values(dossier: Dossier, query: AdapterQuery) -> dict[str, JsonValue]:
    return {
        "aangemeld_bij_bemiddeling": True,
        "bemiddeling_status": dossier.status,
        "afspraken": list(dossier.afspraken),
        "dossiernummer": dossier.dossiernummer,
        "aanmelddatum": dossier.aanmelddatum.isoformat(),
        "partijen": [{"naam": p.naam, "rol": p.rol} for p in dossier.partijen],
        "bemiddelaar": dossier.bemiddelaar,
        "gespreksverslagen": [
            {"datum": v.datum.isoformat(), "tekst": v.tekst}
            for v in dossier.gespreksverslagen
            if in_period(v.datum, query.period)
        ],
    }
