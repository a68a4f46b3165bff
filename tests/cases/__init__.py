"""Tests of the case register: its pure rules, its crypto, its storage and its operations.

`make_case` builds a complete `Case` value for the model and store tests;
the register tests build theirs through `CaseRegister.create` instead.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from broker.cases.model import (
    Address,
    Case,
    CaseKind,
    CasePartner,
    CaseStatus,
    Consent,
    PartnerStatus,
    Subject,
    SubjectRole,
)

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)

REGISSEUR = "gemeente-lekstroom"
POLICE = "politie-lekstroom"
OWNER = "woonstichting-de-linge"
OTHER_CORPORATION = "woongoed-lekstroom"
CARE = "buurtteam-lekstroom"

# Personal data that must never be readable outside its sealed column.
OVERLASTGEVER_NAME = "Willemijn Oosterhuis-Brandsma"
MELDER_NAME = "Reinout van der Kolk"
OVERLASTGEVER_BIRTH = date(1979, 3, 14)
MELDER_BIRTH = date(1985, 7, 2)
ADDRESS = Address(postcode="4101QZ", huisnummer=217, toevoeging="bis", plaats="Vreeswijkerdam")


def make_case(
    *,
    case_id: str = "case_0123456789abcdef0123456789abcdef",
    status: CaseStatus = CaseStatus.aangemeld,
    dwelling_owner: str = OWNER,
    consent: Consent = Consent.pending,
    partners: tuple[CasePartner, ...] | None = None,
) -> Case:
    if partners is None:
        partners = (
            CasePartner(REGISSEUR, PartnerStatus.actief, T0),
            CasePartner(POLICE, PartnerStatus.actief, T0),
            CasePartner(OWNER, PartnerStatus.uitgenodigd, T0),
        )
    return Case(
        id=case_id,
        reference="LEK-2026-0042",
        kind=CaseKind.complex,
        status=status,
        regisseur=REGISSEUR,
        dwelling_owner=dwelling_owner,
        address=ADDRESS,
        subjects=(
            Subject("og-1", SubjectRole.overlastgever, OVERLASTGEVER_NAME, OVERLASTGEVER_BIRTH),
            Subject("m-1", SubjectRole.melder, MELDER_NAME, MELDER_BIRTH),
        ),
        partners=partners,
        consent=consent,
        criteria=(1, 2, 6),
        created_at=T0,
        updated_at=T0,
        status_history=((CaseStatus.aangemeld.value, T0),),
    )
