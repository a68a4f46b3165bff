"""The corporatie source: the tenancy, the landlord's measures, and everything else the ERP holds.

What it does: finds the subject among the contract parties by name and
birth date and answers `corporatie.huurrelatie` with the tenancy, the
nuisance reports and warnings (optionally bounded by the period) and the
landlord's escalation steps (seed 002 Bijlage D) — and, deliberately, the
financial position (rent arrears, income, payment plan) and staff notes.

What it does not: decide what may leave. Income information never flows
(R2, seed 002 §5.2); the broker filters it. Answering it here is what lets
that filter be tested against a realistic source.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import JsonValue

from adapters.corporatie.records import Contractpartij, ErpExport, Huurcontract, load_export
from adapters.sdk.declarations import FieldDeclaration, build_answer
from adapters.sdk.matching import in_period, is_subject
from broker.adapter_protocol import AdapterAnswer, AdapterQuery, DataCategory

EXCHANGE_TYPE = "corporatie.huurrelatie"

FIELDS: tuple[FieldDeclaration, ...] = (
    # The convenant's fields (seed 004 §5.2).
    FieldDeclaration("huurder_sinds", DataCategory.tenancy),
    FieldDeclaration("contractvorm", DataCategory.tenancy),
    FieldDeclaration("overlastmeldingen_aantal", DataCategory.nuisance),
    FieldDeclaration("waarschuwingen", DataCategory.enforcement),
    FieldDeclaration("gedragsaanwijzing", DataCategory.enforcement),
    FieldDeclaration("laatste_kans_contract", DataCategory.enforcement),
    FieldDeclaration("ontruimingsprocedure", DataCategory.enforcement),
    # Held by the ERP; never to flow (R2).
    FieldDeclaration("huurachterstand", DataCategory.financial),
    FieldDeclaration("inkomen", DataCategory.financial),
    FieldDeclaration("betalingsregeling", DataCategory.financial),
    FieldDeclaration("notities", DataCategory.free_text),
)


class CorporatieSource:
    """A `PartnerSource` over one corporation's ERP export."""

    def __init__(self, export: ErpExport) -> None:
        self._export = export
        self.declarations: dict[str, tuple[FieldDeclaration, ...]] = {EXCHANGE_TYPE: FIELDS}

    @classmethod
    def from_file(cls, path: Path) -> CorporatieSource:
        return cls(load_export(path))

    def _find(self, query: AdapterQuery) -> tuple[Huurcontract, Contractpartij] | None:
        for contract in self._export.huurcontracten:
            for partij in contract.contractpartijen:
                if is_subject(
                    query.subject, full_name=partij.volledige_naam, birth_date=partij.geboortedatum
                ):
                    return contract, partij
        return None

    def answer(self, query: AdapterQuery) -> AdapterAnswer:
        found = self._find(query)
        if found is None:
            return build_answer(query, subject_known=False, values={}, declared=FIELDS)
        contract, _partij = found
        return build_answer(
            query, subject_known=True, values=_values(contract, query), declared=FIELDS
        )


def _values(contract: Huurcontract, query: AdapterQuery) -> dict[str, JsonValue]:
    dossier, financieel = contract.overlastdossier, contract.financieel
    values: dict[str, JsonValue] = {
        "huurder_sinds": contract.ingangsdatum.isoformat(),
        "contractvorm": contract.contractsoort,
        "overlastmeldingen_aantal": sum(
            1 for m in dossier.meldingen if in_period(m.datum, query.period)
        ),
        "waarschuwingen": [
            {"datum": m.datum.isoformat(), "soort": m.soort}
            for m in dossier.maatregelen
            if in_period(m.datum, query.period)
        ],
        "gedragsaanwijzing": dossier.gedragsaanwijzing,
        "laatste_kans_contract": dossier.laatste_kans_contract,
        "ontruimingsprocedure": dossier.ontruimingsprocedure,
        "huurachterstand": financieel.huurachterstand_euro,
        "notities": [
            {"datum": n.datum.isoformat(), "tekst": n.tekst}
            for n in contract.notities
            if in_period(n.datum, query.period)
        ],
    }
    if financieel.inkomen is not None:
        values["inkomen"] = {
            "bron": financieel.inkomen.bron,
            "netto_per_maand": financieel.inkomen.netto_per_maand,
        }
    if financieel.betalingsregeling is not None:
        values["betalingsregeling"] = {
            "afgesproken": financieel.betalingsregeling.afgesproken.isoformat(),
            "termijn_euro": financieel.betalingsregeling.termijn_euro,
            "status": financieel.betalingsregeling.status,
        }
    return values
