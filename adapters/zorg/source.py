"""The zorg source: whether a person is known, and everything else the client file holds.

What it does: answers `<soort>.bekendheid` (e.g. `buurtteam.bekendheid`,
`ggd.bekendheid`): is the subject a client with a care trajectory that
overlaps the period, and if so who their care worker is (seed 004 §5.6) —
and, deliberately, the diagnosis, treatment plan, medication and progress
reports of that trajectory.

What it does not: decide what may leave. Health data never flows (R2,
seed 002 §5.2) and care parties may share little more than "known, and by
whom" (R4); the broker filters. An unknown person is answered as
`subject_known: false` with `bekend: false`, the one fact the question asks.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import JsonValue

from adapters.sdk.declarations import FieldDeclaration, build_answer
from adapters.sdk.matching import in_period, is_subject, overlaps_period
from adapters.zorg.records import Client, Clientregister, Traject, load_register
from broker.adapter_protocol import AdapterAnswer, AdapterQuery, DataCategory

FIELDS: tuple[FieldDeclaration, ...] = (
    # The convenant's fields (seed 004 §5.6).
    FieldDeclaration("bekend", DataCategory.care_relation),
    FieldDeclaration("hulpverlener_naam", DataCategory.care_relation),
    # Held in the client file; never to flow (R2, R4).
    FieldDeclaration("diagnose", DataCategory.health),
    FieldDeclaration("behandelplan", DataCategory.health),
    FieldDeclaration("medicatie", DataCategory.health),
    FieldDeclaration("notities", DataCategory.free_text),
)


def exchange_type_for(soort: str) -> str:
    """The convenant's exchange type for a care party of this kind."""
    return f"{soort}.bekendheid"


class ZorgSource:
    """A `PartnerSource` over one care organisation's client register."""

    def __init__(self, register: Clientregister) -> None:
        self._register = register
        self.exchange_type = exchange_type_for(register.organisatie.soort)
        self.declarations: dict[str, tuple[FieldDeclaration, ...]] = {self.exchange_type: FIELDS}

    @classmethod
    def from_file(cls, path: Path) -> ZorgSource:
        return cls(load_register(path))

    def answer(self, query: AdapterQuery) -> AdapterAnswer:
        client = next(
            (
                c
                for c in self._register.clienten
                if is_subject(query.subject, full_name=c.naam, birth_date=c.geboortedatum)
            ),
            None,
        )
        trajecten = (
            []
            if client is None
            else [t for t in client.trajecten if overlaps_period(t.start, t.einde, query.period)]
        )
        if client is None or not trajecten:
            return build_answer(
                query, subject_known=False, values={"bekend": False}, declared=FIELDS
            )
        latest = max(trajecten, key=lambda t: t.start)
        return build_answer(
            query, subject_known=True, values=_values(client, latest, query), declared=FIELDS
        )


def _values(client: Client, traject: Traject, query: AdapterQuery) -> dict[str, JsonValue]:
    values: dict[str, JsonValue] = {
        "bekend": True,
        "hulpverlener_naam": traject.hulpverlener.naam,
        "notities": [
            {"datum": r.datum.isoformat(), "tekst": r.tekst}
            for r in client.rapportages
            if in_period(r.datum, query.period)
        ],
    }
    if traject.diagnose is not None:
        values["diagnose"] = traject.diagnose
    if traject.behandelplan is not None:
        values["behandelplan"] = traject.behandelplan
    if traject.medicatie is not None:
        values["medicatie"] = traject.medicatie
    return values
