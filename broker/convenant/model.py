"""The convenant's schema, as pydantic models that reject unknown keys.

A convenant fixes which partners take part, which role each has, which
exchanges exist (who provides, who may ask, which fields, on which legal
basis) and the retention and deadline terms. The broker and the policy read
only this; no partner, field or term is a constant in code.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCOPES = ("cases:read", "cases:write", "exchange", "audit:own", "audit:read")
Scope = Literal["cases:read", "cases:write", "exchange", "audit:own", "audit:read"]

# Partner and field identifiers end up in URLs, log lines and Rego data:
# a narrow alphabet keeps injection out by construction.
IDENTIFIER = r"^[a-z][a-z0-9_.-]{1,63}$"


class PartnerRole(StrEnum):
    gemeente = "gemeente"
    politie = "politie"
    corporatie = "corporatie"
    zorg = "zorg"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Partner(_Strict):
    id: str = Field(pattern=IDENTIFIER)
    name: str = Field(min_length=1, max_length=200)
    role: PartnerRole
    function: str | None = Field(default=None, pattern=IDENTIFIER)
    # The casusregisseur may register cases and direct them (seed 002 §1.2, 004 §5.1).
    regisseur: bool = False
    # May this partner's systems use plain bearer tokens instead of DPoP-bound
    # ones (RFC 9449)? Off unless the convenant says so, for a partner whose
    # software cannot sign DPoP proofs yet; a stolen bearer token works for
    # whoever holds it, a DPoP-bound one only with the partner's key.
    bearer_allowed: bool = False


class Auditor(_Strict):
    """A DPO (functionaris gegevensbescherming) client: reads the log, nothing else."""

    id: str = Field(pattern=IDENTIFIER)
    name: str = Field(min_length=1, max_length=200)
    organisation: str = Field(pattern=IDENTIFIER)
    # As for partners: plain bearer tokens only where the convenant allows them.
    bearer_allowed: bool = False


class LegalBasis(_Strict):
    law: str = Field(min_length=1, max_length=200)
    article: str = Field(min_length=1, max_length=100)
    convenant_article: str = Field(min_length=1, max_length=100)


class ExchangeType(_Strict):
    id: str = Field(pattern=r"^[a-z]+\.[a-z_]+$")
    title: str = Field(min_length=1, max_length=200)
    # The "Logboek Dataverwerkingen" reference of this processing activity.
    processing_activity: str = Field(min_length=1, max_length=200)
    provider_role: PartnerRole
    provider_function: str | None = Field(default=None, pattern=IDENTIFIER)
    requester_roles: tuple[PartnerRole, ...] = Field(min_length=1)
    # Only the case's regisseur may ask (seed 004 §5.3 for the police, §5.6 for care).
    regisseur_only: bool = False
    fields: tuple[str, ...] = Field(min_length=1)
    legal_basis: LegalBasis
    # The longest period one question may cover; bounds bulk retrieval (R1).
    max_period_days: int = Field(ge=1, le=3660)
    # Allowed during intake (status aangemeld), to decide on the case (seed 004 §5.1).
    intake: bool = False
    # Fields that flow only with the recorded consent of both parties (R4, seed 002 §5.3).
    consent_fields: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consent_fields_listed(self) -> ExchangeType:
        unlisted = sorted(set(self.consent_fields) - set(self.fields))
        if unlisted:
            raise ValueError(f"consent_fields {unlisted} are not among the exchange's fields")
        return self


class RetentionTerms(_Strict):
    closed_case_years: int = Field(ge=1, le=20)  # seed 002 §7.3-7.4
    not_complex_working_days: int = Field(ge=1, le=60)  # seed 002 §3.4.2


class DeadlineTerms(_Strict):
    corporation_consent_days: int = Field(ge=1, le=60)  # seed 004 §5.2
    intake_decision_days: int = Field(ge=1, le=60)  # seed 004 §5.1
    inform_overlastgever_days: int = Field(ge=1, le=365)  # seed 002 Tabel 1, §7.1
    agenda_working_days_before_meeting: int = Field(ge=1, le=60)  # seed 002 §3.4


class Criterion(_Strict):
    id: int = Field(ge=1, le=99)
    text: str = Field(min_length=1, max_length=500)


class ComplexCaseCriteria(_Strict):
    """Admission criteria for the complex-case approach (R11; seed 004 §2)."""

    minimum: int = Field(ge=1)
    items: tuple[Criterion, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _minimum_reachable(self) -> ComplexCaseCriteria:
        if self.minimum > len(self.items):
            raise ValueError(f"minimum {self.minimum} exceeds the {len(self.items)} criteria")
        return self


class Terms(_Strict):
    retention: RetentionTerms
    deadlines: DeadlineTerms


class Convenant(_Strict):
    id: str = Field(pattern=IDENTIFIER)
    version: str = Field(min_length=1, max_length=40)
    title: str = Field(min_length=1, max_length=300)
    region: str = Field(min_length=1, max_length=100)
    valid_from: date
    valid_until: date
    purpose: Literal["aanpak_woonoverlast"]
    partners: tuple[Partner, ...] = Field(min_length=1)
    auditors: tuple[Auditor, ...] = ()
    scopes: dict[str, tuple[Scope, ...]]
    complex_case_criteria: ComplexCaseCriteria
    exchanges: tuple[ExchangeType, ...] = Field(min_length=1)
    terms: Terms

    @model_validator(mode="after")
    def _consistent(self) -> Convenant:
        ids = [p.id for p in self.partners] + [a.id for a in self.auditors]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"principal ids must be unique, got duplicates {duplicates}")
        if not any(p.regisseur for p in self.partners):
            raise ValueError("expected at least one partner with regisseur: true, got none")
        exchange_ids = [e.id for e in self.exchanges]
        if len(set(exchange_ids)) != len(exchange_ids):
            raise ValueError("exchange ids must be unique")
        known_roles = {r.value for r in PartnerRole} | {"fg"}
        unknown = sorted(set(self.scopes) - known_roles)
        if unknown:
            raise ValueError(f"scopes name unknown roles {unknown}; expected {sorted(known_roles)}")
        partner_ids = {p.id for p in self.partners}
        for auditor in self.auditors:
            if auditor.organisation not in partner_ids:
                raise ValueError(
                    f"auditor {auditor.id!r} names organisation {auditor.organisation!r},"
                    " which is not a partner"
                )
        if self.valid_until < self.valid_from:
            raise ValueError("valid_until lies before valid_from")
        return self

    def partner(self, partner_id: str) -> Partner | None:
        return next((p for p in self.partners if p.id == partner_id), None)

    def auditor(self, auditor_id: str) -> Auditor | None:
        return next((a for a in self.auditors if a.id == auditor_id), None)

    def exchange(self, exchange_id: str) -> ExchangeType | None:
        return next((e for e in self.exchanges if e.id == exchange_id), None)

    def principal_ids(self) -> list[str]:
        return [p.id for p in self.partners] + [a.id for a in self.auditors]

    def scopes_for(self, principal_id: str) -> frozenset[str]:
        """The scopes a principal's role allows; empty for strangers (fail closed)."""
        partner = self.partner(principal_id)
        if partner is not None:
            return frozenset(self.scopes.get(partner.role.value, ()))
        if self.auditor(principal_id) is not None:
            return frozenset(self.scopes.get("fg", ()))
        return frozenset()

    def bearer_allowed(self, principal_id: str) -> bool:
        """May this principal use unbound bearer tokens? False for strangers (fail closed)."""
        principal = self.partner(principal_id) or self.auditor(principal_id)
        return principal is not None and principal.bearer_allowed

    def role_of(self, principal_id: str) -> str | None:
        partner = self.partner(principal_id)
        if partner is not None:
            return partner.role.value
        return "fg" if self.auditor(principal_id) is not None else None
