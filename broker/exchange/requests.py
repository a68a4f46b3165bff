"""The body of `POST /v1/exchanges` (contract.md), parsed strictly at the edge."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field, model_validator

from broker.cases.requests import SUBJECT_REF


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PeriodIn(_Strict):
    from_: date = Field(alias="from")
    to: date

    @model_validator(mode="after")
    def _ordered(self) -> PeriodIn:
        if self.to < self.from_:
            raise ValueError("period.to lies before period.from")
        return self


class OnBehalfOf(_Strict):
    user: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")
    function: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]*$")


class ExchangeRequest(_Strict):
    case: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    subject: str = Field(pattern=SUBJECT_REF)
    query: str = Field(min_length=1, max_length=64, pattern=r"^[a-z]+\.[a-z_]+$")
    purpose: str = Field(min_length=1, max_length=64, pattern=r"^[a-z_]+$")
    period: PeriodIn | None = None
    on_behalf_of: OnBehalfOf
