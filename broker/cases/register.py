"""The case register's operations: convenant checks, state rules, storage.

Who may do what (contract.md, cases):
* create: a partner marked `regisseur` in the convenant;
* read and status: partners of the case (anyone else gets 404);
* admit partner and transitions: the case's regisseur;
* consent: the corporation that owns the dwelling (seed 004 §5.2).

These are rules about the register itself. What may flow in an exchange is
decided by the Rego policy, not here. The R6 terms in the status view come
from `broker.deadlines`; listing and destroying for the retention job
(broker/retention) go through here to the store.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any

from broker.cases.model import (
    Address,
    Case,
    CaseEventKind,
    CasePartner,
    CaseStatus,
    Consent,
    PartnerStatus,
    Subject,
    SubjectRole,
    decide_admission,
    decide_consent,
    decide_event,
    decide_transition,
    decide_urgency,
    require_visible,
)
from broker.cases.requests import CreateCaseRequest
from broker.cases.store import CaseStore
from broker.convenant import Convenant, PartnerRole
from broker.deadlines import case_deadlines
from broker.errors import InvalidRequestError, NotFoundError, RefusalError
from broker.retention.stats import CaseStatistic, StatisticsRow

PARTICULIER = "particulier"
# What new_case_id makes; anything else is not a case of this register.
CASE_ID = re.compile(r"case_[0-9a-f]{32}")


def new_case_id() -> str:
    # 128 random bits: case ids cannot be guessed or enumerated.
    return "case_" + secrets.token_hex(16)


class CaseRegister:
    def __init__(self, *, store: CaseStore, convenant: Convenant) -> None:
        self._store = store
        self._convenant = convenant

    def _require_regisseur_partner(self, partner_id: str) -> None:
        partner = self._convenant.partner(partner_id)
        if partner is None or not partner.regisseur:
            raise RefusalError("not_regisseur", "Only the casusregisseur may do this.", status=403)

    def _require_known_partner(self, partner_id: str, *, what: str) -> None:
        if self._convenant.partner(partner_id) is None:
            raise InvalidRequestError(f"{what} {partner_id!r} is not a partner of the convenant")

    def create(self, *, caller: str, request: CreateCaseRequest, now: datetime) -> Case:
        self._require_regisseur_partner(caller)
        refs = [s.ref for s in request.subjects]
        if len(set(refs)) != len(refs):
            raise InvalidRequestError("subject refs must be unique within a case")
        if not any(s.role == SubjectRole.overlastgever for s in request.subjects):
            raise InvalidRequestError("a case needs at least one subject with role overlastgever")
        known = {c.id for c in self._convenant.complex_case_criteria.items}
        unknown = sorted(set(request.criteria) - known)
        if unknown:
            raise InvalidRequestError(f"criteria {unknown} are not in the convenant")
        for partner_id in request.partners:
            self._require_known_partner(partner_id, what="partner")

        owner = request.dwelling_owner
        owner_is_corporation = False
        if owner != PARTICULIER:
            self._require_known_partner(owner, what="dwelling_owner")
            owner_partner = self._convenant.partner(owner)
            owner_is_corporation = (
                owner_partner is not None and owner_partner.role == PartnerRole.corporatie
            )
            if not owner_is_corporation:
                raise InvalidRequestError("dwelling_owner must be a corporation or 'particulier'")

        consent = Consent.pending if owner_is_corporation else Consent.not_required
        partners: dict[str, CasePartner] = {}
        for partner_id in (caller, *request.partners):
            partners[partner_id] = CasePartner(partner_id, PartnerStatus.actief, now)
        if owner_is_corporation:
            # The owner is asked for consent and takes part once it grants it.
            partners[owner] = CasePartner(owner, PartnerStatus.uitgenodigd, now)

        case = Case(
            id=new_case_id(),
            reference=request.reference,
            kind=request.kind,
            status=CaseStatus.aangemeld,
            regisseur=caller,
            dwelling_owner=owner,
            address=Address(
                postcode=request.address.postcode.replace(" ", ""),
                huisnummer=request.address.huisnummer,
                toevoeging=request.address.toevoeging,
                plaats=request.address.plaats,
            ),
            subjects=tuple(
                Subject(ref=s.ref, role=s.role, name=s.name, birth_date=s.birth_date)
                for s in request.subjects
            ),
            partners=tuple(partners.values()),
            consent=consent,
            criteria=tuple(sorted(set(request.criteria))),
            created_at=now,
            updated_at=now,
            status_history=((CaseStatus.aangemeld.value, now),),
        )
        self._store.insert(case)
        return case

    def load(self, case_id: str) -> Case | None:
        # An id that cannot be one of ours is simply absent: the same 404 as any
        # unknown case, and NUL or wildcards never reach a database driver.
        return self.load_with_key(case_id)[0]

    def load_with_key(self, case_id: str) -> tuple[Case | None, bytes | None]:
        """The case and its data key (None, None when absent), from one read."""
        if not CASE_ID.fullmatch(case_id):
            return None, None
        return self._store.load_with_key(case_id)

    def get(self, *, caller: str, case_id: str) -> Case:
        return require_visible(self.load(case_id), caller)

    def _regisseur_case(self, caller: str, case_id: str) -> Case:
        case = self.get(caller=caller, case_id=case_id)
        if case.regisseur != caller:
            raise RefusalError("not_regisseur", "Only the case's regisseur may do this.")
        return case

    def admit(self, *, caller: str, case_id: str, partner: str, now: datetime) -> Case:
        case = self._regisseur_case(caller, case_id)
        self._require_known_partner(partner, what="partner")
        return self._store.update(decide_admission(case, partner, now=now))

    def decide_consent(self, *, caller: str, case_id: str, granted: bool, now: datetime) -> Case:
        case = self.load(case_id)
        if case is None or case.partner_entry(caller) is None:
            raise NotFoundError("case not found or not visible to this partner")
        return self._store.update(decide_consent(case, caller, granted, now=now))

    def transition(self, *, caller: str, case_id: str, to: CaseStatus, now: datetime) -> Case:
        case = self._regisseur_case(caller, case_id)
        return self._store.update(decide_transition(case, to, now=now))

    def record_event(
        self,
        *,
        caller: str,
        case_id: str,
        kind: CaseEventKind,
        now: datetime,
        date: dt.date | None = None,
    ) -> Case:
        case = self.get(caller=caller, case_id=case_id)
        role = self._convenant.role_of(caller) or ""
        return self._store.update(
            decide_event(case, kind, by=caller, role=role, now=now, date=date)
        )

    def mark_urgent(self, *, caller: str, case_id: str, justification: str, now: datetime) -> Case:
        case = self._regisseur_case(caller, case_id)
        return self._store.update(
            decide_urgency(case, by=caller, justification=justification, now=now)
        )

    def data_key(self, case_id: str) -> bytes | None:
        return self._store.data_key(case_id)

    # ---- for jobs and the DPO (no caller: these are not partner operations) ----

    def case_ids(self) -> list[str]:
        return self._store.case_ids()

    def cases_in_states(self, states: Collection[CaseStatus]) -> Iterator[Case]:
        """Cases in `states` without their personal data (see SqlCaseStore.cases_in_states)."""
        return self._store.cases_in_states(states)

    def destroy_personal_data(
        self, case_id: str, *, now: datetime, statistic: CaseStatistic | None
    ) -> bool:
        return self._store.destroy_personal_data(case_id, now=now, statistic=statistic)

    def unlogged_destructions(self) -> list[str]:
        return self._store.unlogged_destructions()

    def mark_destruction_logged(self, case_id: str) -> None:
        self._store.mark_destruction_logged(case_id)

    def statistics(self) -> list[StatisticsRow]:
        return self._store.statistics()

    def ping(self) -> None:
        self._store.ping()

    def status_view(self, *, caller: str, case_id: str, now: datetime) -> dict[str, Any]:
        """U2: partner status of a case as one of its partners may see it."""
        case = self.get(caller=caller, case_id=case_id)
        return case_status_document(case, self._convenant, viewer=caller, now=now)


def case_status_document(
    case: Case, convenant: Convenant, *, viewer: str, now: datetime
) -> dict[str, Any]:
    partners = []
    for entry in case.partners:
        partner = convenant.partner(entry.partner)
        role = partner.role.value if partner else "onbekend"
        if role == PartnerRole.zorg.value and viewer not in (case.regisseur, entry.partner):
            # Which care organisation takes part is itself health-related data
            # (R2, R4): other partners see only that a care partner takes part.
            partners.append({"partner": "zorgpartner", "role": role, "status": entry.status.value})
            continue
        partners.append(
            {
                "partner": entry.partner,
                "role": role,
                "status": entry.status.value,
                "since": entry.since.isoformat(),
            }
        )
    return {
        "case": case.id,
        "status": case.status.value,
        "regisseur": case.regisseur,
        "partners": partners,
        # R6: contract.md's {"kind", "due", "met"} plus "overdue" and "met_at".
        "deadlines": [d.to_dict() for d in case_deadlines(case, convenant, now=now)],
    }


def case_document(
    case: Case, convenant: Convenant, *, viewer: str, now: datetime
) -> dict[str, Any]:
    """GET /v1/cases/{id}: the register entry without names or birth dates (R10)."""
    status = case_status_document(case, convenant, viewer=viewer, now=now)
    address = None
    if case.address is not None:
        address = {
            "postcode": case.address.postcode,
            "huisnummer": case.address.huisnummer,
            "toevoeging": case.address.toevoeging,
            "plaats": case.address.plaats,
        }
    return {
        "id": case.id,
        "reference": case.reference,
        "kind": case.kind.value,
        "status": case.status.value,
        "regisseur": case.regisseur,
        "dwelling_owner": case.dwelling_owner,
        "consent": case.consent.value,
        "criteria": list(case.criteria),
        "address": address,
        "subjects": [{"ref": s.ref, "role": s.role.value} for s in case.subjects],
        "partners": status["partners"],
        "created_at": case.created_at.isoformat(),
        "updated_at": case.updated_at.isoformat(),
        "personal_data_destroyed": case.personal_data_destroyed,
        "events": [
            {"event": e.kind.value, "by": e.by, "at": e.at.isoformat()}
            # A planned meeting's date (R6 agenda term); other events carry none.
            | ({"date": e.date.isoformat()} if e.date is not None else {})
            for e in case.events
        ],
        "urgent": (
            {"by": case.urgency.by, "since": case.urgency.since.isoformat()}
            if case.urgency
            else None
        ),
    }


__all__ = ["CaseRegister", "case_document", "case_status_document", "new_case_id"]
