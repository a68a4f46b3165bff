"""Typed policy decisions, parsed strictly from what the engine returned.

Anything other than the documented shape is a `PolicyUnavailableError`: a
missing key, an empty refusal without a code, an "allow" without fields. An
empty or malformed result never counts as permission (style.md §13).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.errors import PolicyUnavailableError


@dataclass(frozen=True)
class Refusal:
    code: str
    reason: str
    # What the requester is told; differs from `reason` where the true reason
    # must stay hidden (R3: a running investigation is never revealed).
    public_reason: str
    rank: int


@dataclass(frozen=True)
class ExchangeDecision:
    allow: bool
    refusals: tuple[Refusal, ...]
    provider: str | None
    fields: tuple[str, ...]
    legal_basis: dict[str, str] | None
    processing_activity: str | None
    flags: tuple[str, ...]

    @property
    def refusal(self) -> Refusal:
        """The refusal the requester is told about: the lowest rank."""
        return min(self.refusals, key=lambda r: (r.rank, r.code))


@dataclass(frozen=True)
class Withheld:
    field: str
    code: str
    reason: str
    public_reason: str
    # Whether the requester may learn that this field was withheld at all.
    visible: bool


@dataclass(frozen=True)
class DisclosureDecision:
    disclose: tuple[str, ...]
    withheld: tuple[Withheld, ...]


def _require(document: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(document, dict) or key not in document:
        raise PolicyUnavailableError(f"policy result lacks {key!r}: got {type(document).__name__}")
    value = document[key]
    if not isinstance(value, kind):
        raise PolicyUnavailableError(
            f"policy result {key!r}: expected {kind}, got {type(value).__name__}"
        )
    return value


def _strings(values: list[Any], what: str) -> tuple[str, ...]:
    if not all(isinstance(v, str) for v in values):
        raise PolicyUnavailableError(f"policy result {what}: expected strings")
    return tuple(values)


def parse_exchange_decision(result: Any) -> ExchangeDecision:
    allow = _require(result, "allow", bool)
    refusals = []
    for item in _require(result, "refusals", list):
        code = _require(item, "code", str)
        reason = _require(item, "reason", str)
        public = item.get("public_reason", reason)
        rank = _require(item, "rank", int)
        if not code or not isinstance(public, str):
            raise PolicyUnavailableError("policy refusal without a code or public reason")
        refusals.append(Refusal(code=code, reason=reason, public_reason=public, rank=rank))
    if allow == bool(refusals):
        # Allowed with refusals, or refused without one: contradictory, so deny.
        raise PolicyUnavailableError(
            f"policy result contradicts itself: allow={allow} with {len(refusals)} refusals"
        )
    fields = _strings(_require(result, "fields", list), "fields")
    provider = result.get("provider")
    legal_basis = result.get("legal_basis")
    if allow and (not fields or not isinstance(provider, str) or not isinstance(legal_basis, dict)):
        raise PolicyUnavailableError("policy allowed an exchange without fields, provider or basis")
    flags = result.get("flags", [])
    if not isinstance(flags, list):
        raise PolicyUnavailableError(
            f"policy result 'flags': expected a list, got {type(flags).__name__}"
        )
    activity = result.get("processing_activity")
    return ExchangeDecision(
        allow=allow,
        refusals=tuple(refusals),
        provider=provider if isinstance(provider, str) else None,
        fields=fields,
        legal_basis=legal_basis if isinstance(legal_basis, dict) else None,
        processing_activity=activity if isinstance(activity, str) else None,
        flags=_strings(flags, "flags"),
    )


def parse_disclosure_decision(result: Any) -> DisclosureDecision:
    disclose = _strings(_require(result, "disclose", list), "disclose")
    withheld = []
    for item in _require(result, "withheld", list):
        reason = _require(item, "reason", str)
        public = item.get("public_reason", reason)
        if not isinstance(public, str):
            raise PolicyUnavailableError("policy withheld a field without a readable public reason")
        withheld.append(
            Withheld(
                field=_require(item, "field", str),
                code=_require(item, "code", str),
                reason=reason,
                public_reason=public,
                visible=item.get("visible") is True,
            )
        )
    overlap = set(disclose) & {w.field for w in withheld}
    if overlap:
        raise PolicyUnavailableError(f"policy both discloses and withholds {sorted(overlap)}")
    return DisclosureDecision(disclose=disclose, withheld=tuple(withheld))
