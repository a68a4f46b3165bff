"""Case values and the pure rules of the case register (no I/O).

States follow the process of seed 002 (intake, case meeting, plan,
monitoring, closing) as contract.md names them. Transitions:

    aangemeld → in_behandeling → casusoverleg → plan_van_aanpak → monitoring → afgesloten
    aangemeld | in_behandeling | casusoverleg → geen_complexe_overlast
    monitoring → plan_van_aanpak   (the plan is adjusted, seed 004 §5.1 "bijstellingen")

`afgesloten` and `geen_complexe_overlast` are final. Anything else is a 409.
A final case still takes the informing events (`INFORMING_EVENTS`): the
overlastgever is told within 30 days *after* the approach closes (seed 002
Tabel 1, §3.9.3, §7.1), so that fact can only be recorded afterwards.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from broker.errors import ConflictError, InvalidRequestError, NotFoundError


class CaseStatus(StrEnum):
    aangemeld = "aangemeld"
    in_behandeling = "in_behandeling"
    casusoverleg = "casusoverleg"
    plan_van_aanpak = "plan_van_aanpak"
    monitoring = "monitoring"
    afgesloten = "afgesloten"
    geen_complexe_overlast = "geen_complexe_overlast"


ALLOWED_TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.aangemeld: frozenset({CaseStatus.in_behandeling, CaseStatus.geen_complexe_overlast}),
    CaseStatus.in_behandeling: frozenset(
        {CaseStatus.casusoverleg, CaseStatus.geen_complexe_overlast}
    ),
    CaseStatus.casusoverleg: frozenset(
        {CaseStatus.plan_van_aanpak, CaseStatus.geen_complexe_overlast}
    ),
    CaseStatus.plan_van_aanpak: frozenset({CaseStatus.monitoring}),
    CaseStatus.monitoring: frozenset({CaseStatus.afgesloten, CaseStatus.plan_van_aanpak}),
    CaseStatus.afgesloten: frozenset(),
    CaseStatus.geen_complexe_overlast: frozenset(),
}


class CaseKind(StrEnum):
    enkelvoudig = "enkelvoudig"
    complex = "complex"


class SubjectRole(StrEnum):
    overlastgever = "overlastgever"
    melder = "melder"
    omwonende = "omwonende"


class PartnerStatus(StrEnum):
    uitgenodigd = "uitgenodigd"
    actief = "actief"
    teruggetrokken = "teruggetrokken"


class Consent(StrEnum):
    """The dwelling-owning corporation's permission to take up the case (seed 004 §5.2)."""

    not_required = "not_required"
    pending = "pending"
    granted = "granted"
    refused = "refused"


class CaseEventKind(StrEnum):
    """Facts partners record on a case, which the policy and the deadlines read."""

    # R3 (seed 004 §5.3): the OM permits sharing nuisance antecedents during an investigation.
    om_toestemming = "om_toestemming"
    # R4 (seed 002 §5.3): both parties consent to content feedback from buurtbemiddeling.
    bemiddeling_toestemming_melder = "bemiddeling_toestemming_melder"
    bemiddeling_toestemming_overlastgever = "bemiddeling_toestemming_overlastgever"
    # R6 (seed 002 Tabel 1, §7.1; §3.7.8): informing the parties.
    overlastgever_geinformeerd = "overlastgever_geinformeerd"
    melder_geinformeerd = "melder_geinformeerd"
    # R6 (seed 002 §3.4, Tabel 1): a case meeting is planned for `date`, and its
    # agenda goes out at least 5 working days before it. `agenda_verzonden` may
    # name the meeting's `date`; without one it serves every meeting planned before it.
    casusoverleg_gepland = "casusoverleg_gepland"
    agenda_verzonden = "agenda_verzonden"


# Who may record which event: a role of the convenant, or "regisseur" for the case's regisseur.
EVENT_RECORDERS: dict[CaseEventKind, frozenset[str]] = {
    CaseEventKind.om_toestemming: frozenset({"politie"}),
    CaseEventKind.bemiddeling_toestemming_melder: frozenset({"regisseur", "zorg"}),
    CaseEventKind.bemiddeling_toestemming_overlastgever: frozenset({"regisseur", "zorg"}),
    CaseEventKind.overlastgever_geinformeerd: frozenset({"regisseur"}),
    CaseEventKind.melder_geinformeerd: frozenset({"regisseur"}),
    # The regisseur chairs the meeting and sends its agenda (seed 002 §3.4-3.5).
    CaseEventKind.casusoverleg_gepland: frozenset({"regisseur"}),
    CaseEventKind.agenda_verzonden: frozenset({"regisseur"}),
}

# Events a final case still takes: informing the parties after closing (seed 002 §3.9.3, §7.1).
INFORMING_EVENTS = frozenset(
    {CaseEventKind.overlastgever_geinformeerd, CaseEventKind.melder_geinformeerd}
)
# Events that carry a date: required for a planned meeting, optional for its agenda.
DATED_EVENTS = frozenset({CaseEventKind.casusoverleg_gepland, CaseEventKind.agenda_verzonden})
# A meeting is planned weeks ahead (seed 001: every two weeks); a date further
# than a year from today is a typo, and an unbounded one would let a caller
# push the agenda term out of sight.
MAX_MEETING_DISTANCE = timedelta(days=366)


@dataclass(frozen=True)
class CaseEvent:
    kind: CaseEventKind
    by: str
    at: datetime
    # The meeting's date for casusoverleg_gepland and (optionally) agenda_verzonden.
    date: dt.date | None = None


@dataclass(frozen=True)
class Urgency:
    """Acute necessity (seed 004 §2): a logged break-glass mark, never a silent bypass."""

    by: str
    since: datetime
    # Free text by the regisseur; sealed with the case's personal data.
    justification: str | None


@dataclass(frozen=True)
class Address:
    postcode: str
    huisnummer: int
    toevoeging: str | None
    plaats: str


@dataclass(frozen=True)
class Subject:
    ref: str
    role: SubjectRole
    # None once the case's personal data has been destroyed (R7).
    name: str | None
    birth_date: date | None


@dataclass(frozen=True)
class CasePartner:
    partner: str
    status: PartnerStatus
    since: datetime


@dataclass(frozen=True)
class Case:
    id: str
    reference: str
    kind: CaseKind
    status: CaseStatus
    regisseur: str
    dwelling_owner: str
    address: Address | None
    subjects: tuple[Subject, ...]
    partners: tuple[CasePartner, ...]
    consent: Consent
    criteria: tuple[int, ...]
    created_at: datetime
    updated_at: datetime
    version: int = 1
    personal_data_destroyed: bool = False
    status_history: tuple[tuple[str, datetime], ...] = field(default_factory=tuple)
    events: tuple[CaseEvent, ...] = ()
    urgency: Urgency | None = None
    # When the dwelling owner decided on consent (R5's 3-day term); None while
    # pending, and for cases stored before the broker recorded it.
    consent_decided_at: datetime | None = None

    def entered(self, status: CaseStatus) -> datetime | None:
        """When the case last entered `status` (its status history), or None if it never did."""
        moments = [moment for name, moment in self.status_history if name == status.value]
        return moments[-1] if moments else None

    def has_event(self, kind: CaseEventKind) -> bool:
        return any(event.kind == kind for event in self.events)

    def partner_entry(self, partner_id: str) -> CasePartner | None:
        return next((p for p in self.partners if p.partner == partner_id), None)

    def is_visible_to(self, partner_id: str) -> bool:
        """Case partners see the case; a withdrawn partner no longer does (R1)."""
        entry = self.partner_entry(partner_id)
        return entry is not None and entry.status != PartnerStatus.teruggetrokken

    def subject(self, ref: str) -> Subject | None:
        return next((s for s in self.subjects if s.ref == ref), None)


def require_visible(case: Case | None, partner_id: str) -> Case:
    """The case, or NotFoundError for absent and foreign cases alike (no existence leak)."""
    if case is None or not case.is_visible_to(partner_id):
        raise NotFoundError("case not found or not visible to this partner")
    return case


def require_regisseur(case: Case, partner_id: str) -> None:
    if case.regisseur != partner_id:
        raise ConflictError(f"expected the case's regisseur {case.regisseur!r}, got {partner_id!r}")


def decide_transition(case: Case, target: CaseStatus, *, now: datetime) -> Case:
    allowed = ALLOWED_TRANSITIONS[case.status]
    if target not in allowed:
        raise ConflictError(
            f"cannot move a case from {case.status.value!r} to {target.value!r};"
            f" allowed: {sorted(s.value for s in allowed) or 'none (final state)'}"
        )
    return replace(
        case,
        status=target,
        updated_at=now,
        status_history=(*case.status_history, (target.value, now)),
    )


def decide_admission(case: Case, partner_id: str, *, now: datetime) -> Case:
    """Admit (or re-admit) a partner; the dwelling owner waits for its own consent."""
    if case.status in (CaseStatus.afgesloten, CaseStatus.geen_complexe_overlast):
        raise ConflictError(f"cannot admit partners to a case in state {case.status.value!r}")
    if partner_id == case.dwelling_owner and case.consent == Consent.refused:
        # Its refusal stands (seed 004 §5.2); re-admitting would silently undo it.
        raise ConflictError("the dwelling's owner refused consent; it cannot be re-admitted")
    existing = case.partner_entry(partner_id)
    if existing is not None and existing.status == PartnerStatus.actief:
        raise ConflictError(f"partner {partner_id!r} already takes part in this case")
    status = (
        PartnerStatus.uitgenodigd
        if partner_id == case.dwelling_owner and case.consent == Consent.pending
        else PartnerStatus.actief
    )
    others = tuple(p for p in case.partners if p.partner != partner_id)
    admitted = CasePartner(partner=partner_id, status=status, since=now)
    return replace(case, partners=(*others, admitted), updated_at=now)


def decide_consent(case: Case, partner_id: str, granted: bool, *, now: datetime) -> Case:
    """Record the dwelling owner's decision (seed 004 §5.2)."""
    if partner_id != case.dwelling_owner:
        # Only the owning corporation decides; others see the same as for a foreign case.
        raise NotFoundError("no consent is asked of this partner for this case")
    if case.consent != Consent.pending:
        raise ConflictError(f"consent was already decided: {case.consent.value!r}")
    consent = Consent.granted if granted else Consent.refused
    status = PartnerStatus.actief if granted else PartnerStatus.teruggetrokken
    partners = tuple(
        replace(p, status=status, since=now) if p.partner == partner_id else p
        for p in case.partners
    )
    return replace(case, consent=consent, partners=partners, updated_at=now, consent_decided_at=now)


def decide_event(
    case: Case,
    kind: CaseEventKind,
    *,
    by: str,
    role: str,
    now: datetime,
    date: dt.date | None = None,
) -> Case:
    """Record a fact on the case if the recorder may (EVENT_RECORDERS).

    `date` is the meeting's date: required for `casusoverleg_gepland`,
    optional for `agenda_verzonden`, refused for every other event.
    """
    allowed = EVENT_RECORDERS[kind]
    as_regisseur = "regisseur" in allowed and case.regisseur == by
    if not as_regisseur and role not in allowed:
        raise ConflictError(f"a partner with role {role!r} cannot record {kind.value!r}")
    final = case.status in (CaseStatus.afgesloten, CaseStatus.geen_complexe_overlast)
    if final and kind not in INFORMING_EVENTS:
        raise ConflictError(
            f"cannot record {kind.value!r} on a case in state {case.status.value!r}"
        )
    if kind == CaseEventKind.casusoverleg_gepland and date is None:
        raise InvalidRequestError(f"expected the meeting's date with {kind.value!r}, got none")
    if date is not None:
        if kind not in DATED_EVENTS:
            raise InvalidRequestError(f"expected no date with {kind.value!r}, got {date!r}")
        if abs(date - now.date()) > MAX_MEETING_DISTANCE:
            raise InvalidRequestError(
                f"expected a meeting date within {MAX_MEETING_DISTANCE.days} days of"
                f" {now.date().isoformat()}, got {date.isoformat()}"
            )
    event = CaseEvent(kind=kind, by=by, at=now, date=date)
    return replace(case, events=(*case.events, event), updated_at=now)


def decide_urgency(case: Case, *, by: str, justification: str, now: datetime) -> Case:
    if case.status in (CaseStatus.afgesloten, CaseStatus.geen_complexe_overlast):
        raise ConflictError(f"cannot mark a case in state {case.status.value!r} urgent")
    if case.urgency is not None:
        raise ConflictError("the case is already marked urgent")
    return replace(
        case, urgency=Urgency(by=by, since=now, justification=justification), updated_at=now
    )
