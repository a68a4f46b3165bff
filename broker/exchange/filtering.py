"""Apply a disclosure decision to an adapter's answer (pure).

Only fields the policy names in `disclose` pass; everything else is dropped
here, whatever the adapter sent. The requester is told about withheld fields
only where the policy marks them visible, with the public reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.adapter_protocol import AdapterAnswer
from broker.canonical import canonical_json, sha256_hex
from broker.policy.decisions import DisclosureDecision


@dataclass(frozen=True)
class FilteredAnswer:
    data: dict[str, Any]
    withheld_public: list[dict[str, str]]
    withheld_audit: list[dict[str, str]]

    @property
    def payload_hash(self) -> str:
        return "sha256:" + sha256_hex(canonical_json(self.data))


def apply_disclosure(answer: AdapterAnswer, decision: DisclosureDecision) -> FilteredAnswer:
    allowed = set(decision.disclose)
    data = {name: field.value for name, field in answer.fields.items() if name in allowed}
    public = [{"field": w.field, "reason": w.public_reason} for w in decision.withheld if w.visible]
    audit = [{"field": w.field, "code": w.code, "reason": w.reason} for w in decision.withheld]
    return FilteredAnswer(
        data=data,
        withheld_public=sorted(public, key=lambda w: w["field"]),
        withheld_audit=audit,
    )
