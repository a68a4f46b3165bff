"""Request bodies of the case endpoints (contract.md), parsed strictly at the edge."""

from __future__ import annotations

import datetime as dt
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from broker.cases.model import DATED_EVENTS, CaseEventKind, CaseKind, CaseStatus, SubjectRole
from broker.convenant.model import IDENTIFIER
from broker.text import PrintableText

# Dutch postcodes: four digits (first not 0), optional space, two capital letters.
POSTCODE = r"^[1-9][0-9]{3} ?[A-Z]{2}$"
SUBJECT_REF = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class AddressIn(_Strict):
    postcode: str = Field(pattern=POSTCODE)
    # StrictInt: JSON `true` must not become house number 1.
    huisnummer: StrictInt = Field(ge=1, le=99999)
    toevoeging: str | None = Field(default=None, max_length=10, pattern=r"^[A-Za-z0-9-]+$")
    plaats: PrintableText = Field(min_length=1, max_length=80)


class SubjectIn(_Strict):
    ref: str = Field(pattern=SUBJECT_REF)
    role: SubjectRole
    name: PrintableText = Field(min_length=1, max_length=200)
    birth_date: date


class CreateCaseRequest(_Strict):
    reference: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]*$")
    kind: CaseKind
    address: AddressIn
    dwelling_owner: str = Field(pattern=IDENTIFIER)
    subjects: tuple[SubjectIn, ...] = Field(min_length=1, max_length=20)
    partners: tuple[str, ...] = Field(default=(), max_length=20)
    # R11: which of the convenant's admission criteria hold (seed 004 §2); optional.
    criteria: tuple[StrictInt, ...] = Field(default=(), max_length=20)


class AdmitPartnerRequest(_Strict):
    partner: str = Field(pattern=IDENTIFIER)


class ConsentRequest(_Strict):
    decision: Literal["granted", "refused"]


class TransitionRequest(_Strict):
    to: CaseStatus


class EventRequest(_Strict):
    event: CaseEventKind
    # The meeting's date (R6, seed 002 §3.4): required with casusoverleg_gepland,
    # optional with agenda_verzonden (which meeting it is for), refused otherwise.
    # `dt.date`: a field named `date` annotated `date` would see itself, not the type.
    date: dt.date | None = None

    @model_validator(mode="after")
    def _date_fits_the_event(self) -> EventRequest:
        if self.event == CaseEventKind.casusoverleg_gepland and self.date is None:
            raise ValueError("casusoverleg_gepland needs the meeting's date")
        if self.date is not None and self.event not in DATED_EVENTS:
            raise ValueError(f"{self.event.value} takes no date")
        return self


class UrgencyRequest(_Strict):
    # Acute necessity must be justified in writing (seed 004 §2); the DPO reviews it.
    justification: PrintableText = Field(min_length=20, max_length=2000)
