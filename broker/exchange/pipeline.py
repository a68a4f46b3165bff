"""One exchange, start to finish, as a readable sequence of small steps.

    load case → decide (policy) → log the intent → fetch (adapter)
    → decide disclosure (policy) → filter → sign → log the disclosure → answer

Every path ends in the log. A refusal before anything is fetched is one
entry (`deny`). Once the policy allows the exchange, an `intent` entry is
made durable *before* the adapter is asked, and the exchange is closed by a
second entry naming it in `intent_index`: `permit`/`partial` with the
answer's digest, the payload hash and the digest of the broker's signature,
or `deny` when the provider, the policy or anything else failed after the
intent. The answer is built only after the closing entry is durable; if an
audit write fails, nothing is disclosed and the caller gets a 503 (log
before disclose, as FSC and the Authorization Decision Log ask).

What it does not: close intents of a broker that died mid-exchange; that is
`broker.exchange.reconcile`, at the next start-up. If the closing write
itself fails, the intent is left open for it too: the failed write may in
fact have been stored, and a second closing entry could contradict it.

An exchange that takes longer than `in_flight_limit` between intent and
closing entry is refused instead of disclosed, because past that limit a
peer broker's reconciliation may already have closed its intent as not
disclosed (`broker.exchange.reconcile.shared_grace`).

Each run is counted in the metrics by the decision of its last entry
(`permit`, `partial`, `deny`) and a reason code: the policy's refusal code,
the error's problem code, or `none` for a disclosure. Codes that are not
plain identifiers are counted as `other`, so the label set stays closed
whatever a policy returns.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from broker.adapter_protocol import AdapterAnswer, AdapterQuery
from broker.audit.entries import INTENT, exchange_entry
from broker.audit.log import AuditLog, Receipt
from broker.canonical import canonical_json, sha256_hex
from broker.cases.crypto import pseudonym
from broker.cases.model import Case
from broker.cases.register import CaseRegister
from broker.clock import Clock
from broker.convenant import Convenant
from broker.errors import (
    AdapterUnavailableError,
    BackendUnavailableError,
    KetenbrokerError,
    PolicyUnavailableError,
    RefusalError,
)
from broker.exchange.answer_signature import disclosure_signature_digest, sign_disclosure
from broker.exchange.filtering import FilteredAnswer, apply_disclosure
from broker.exchange.gateway import AdapterGateway
from broker.exchange.requests import ExchangeRequest
from broker.keys import SigningKey
from broker.metrics import Metrics
from broker.policy.decision_log import DecisionLog, decision_record
from broker.policy.decisions import (
    DisclosureDecision,
    ExchangeDecision,
    parse_disclosure_decision,
    parse_exchange_decision,
)
from broker.policy.engine import PolicyEngine
from broker.policy.inputs import (
    answer_field_facts,
    build_disclosure_input,
    build_exchange_input,
    case_facts,
    period_facts,
)
from broker.tracing import TraceContext

# contract.md: where existence would leak, a refusal is a 404.
REFUSAL_STATUS = {"not_case_partner": 404}

# The metrics' reason for an exchange that disclosed something.
NO_REASON = "none"
# Reason codes are identifiers (`consent_pending`); anything else would be
# free text in a metric label, so it is counted as OTHER_REASON instead.
_REASON_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
OTHER_REASON = "other"


@dataclass(frozen=True)
class Requester:
    partner: str
    role: str
    function: str | None
    user: str
    user_function: str


@dataclass(frozen=True)
class Disclosure:
    """What the requester is told, before the log has given it a receipt."""

    exchange_id: str
    decision: str
    data: dict[str, Any]
    withheld: list[dict[str, str]]
    legal_basis: dict[str, str]
    policy_version: str

    def to_document(self) -> dict[str, Any]:
        """The answer body without its receipt: what the broker signs."""
        return {
            "exchange": self.exchange_id,
            "decision": self.decision,
            "data": self.data,
            "withheld": self.withheld,
            "legal_basis": self.legal_basis,
            # Additive to contract.md: which policy decided (the audit entry has it too).
            "policy_version": self.policy_version,
        }


@dataclass(frozen=True)
class ExchangeOutcome:
    """A disclosed exchange: the answer, its log receipt, and the broker's signature over it."""

    disclosure: Disclosure
    receipt: Receipt
    # Detached JWS over `disclosure.to_document()` (broker.exchange.answer_signature).
    signature: str

    @property
    def exchange_id(self) -> str:
        return self.disclosure.exchange_id

    @property
    def decision(self) -> str:
        return self.disclosure.decision

    def to_response(self) -> dict[str, Any]:
        return {**self.disclosure.to_document(), "receipt": self.receipt.to_dict()}


class ExchangeRefusedError(RefusalError):
    """A refusal that has been logged; carries the log receipt for the record."""

    def __init__(self, code: str, reason: str, *, status: int, receipt: Receipt) -> None:
        super().__init__(code, reason, status=status)
        self.receipt = receipt


def new_exchange_id() -> str:
    return "ex_" + secrets.token_hex(16)


@dataclass(frozen=True)
class _Context:
    exchange_id: str
    now: datetime
    trace: TraceContext
    requester: Requester
    request: ExchangeRequest
    case: Case | None
    subject_pseudonym: str | None
    data_key: bytes | None


class ExchangePipeline:
    def __init__(
        self,
        *,
        convenant: Convenant,
        cases: CaseRegister,
        policy: PolicyEngine,
        adapters: AdapterGateway,
        audit: AuditLog,
        decisions: DecisionLog,
        clock: Clock,
        signing_key: SigningKey,
        in_flight_limit: timedelta,
        metrics: Metrics | None = None,
    ) -> None:
        if in_flight_limit <= timedelta(0):
            raise ValueError(f"expected a positive in-flight limit, got {in_flight_limit}")
        self._decisions = decisions
        self._convenant = convenant
        self._cases = cases
        self._policy = policy
        self._adapters = adapters
        self._audit = audit
        self._clock = clock
        # The broker's own key: it signs what is disclosed (non-repudiation).
        self._signing_key = signing_key
        self._in_flight_limit = in_flight_limit
        self._metrics = metrics or Metrics()

    # --- the pipeline -------------------------------------------------------

    def run(
        self, *, requester: Requester, request: ExchangeRequest, trace: TraceContext
    ) -> ExchangeOutcome:
        started = time.perf_counter()
        decision, reason = "deny", "internal_error"
        try:
            outcome = self._run(requester, request, trace)
        except KetenbrokerError as e:
            reason = e.code
            raise
        else:
            decision, reason = outcome.decision, NO_REASON
            return outcome
        finally:
            self._metrics.observe_exchange(
                decision=decision,
                reason=reason if _REASON_CODE.fullmatch(reason) else OTHER_REASON,
                seconds=time.perf_counter() - started,
            )

    def _run(
        self, requester: Requester, request: ExchangeRequest, trace: TraceContext
    ) -> ExchangeOutcome:
        context = self._load_context(requester, request, trace)
        exchange_input = self._exchange_input(context)
        decision = self._decide_exchange(context, exchange_input)
        if not decision.allow:
            self._refuse(context, decision)
        provider, legal_basis = decision.provider, decision.legal_basis
        if provider is None or legal_basis is None:
            self._fail_before_intent(
                context,
                decision,
                PolicyUnavailableError("policy allowed an exchange without provider or basis"),
            )
        query = self._adapter_query(context, decision)
        # Log before fetch: from here on the log knows the question was asked.
        intent_index = self._record_intent(context, decision, provider)
        try:
            answer = self._fetch(context, query, provider)
            disclosure_decision = self._decide_disclosure(context, exchange_input, provider, answer)
            filtered = apply_disclosure(answer, disclosure_decision)
            disclosure = Disclosure(
                exchange_id=context.exchange_id,
                decision="partial" if filtered.withheld_public else "permit",
                data=filtered.data,
                withheld=filtered.withheld_public,
                legal_basis=legal_basis,
                policy_version=self._policy.version,
            )
            signature = sign_disclosure(key=self._signing_key, body=disclosure.to_document())
            self._check_deadline(context)
        except KetenbrokerError as e:
            self._close_intent(
                context, decision, provider, intent_index=intent_index, code=e.code, detail=str(e)
            )
            raise
        except Exception as e:
            # A bug must not leave the intent open until the next start-up;
            # the error itself still reaches the edge (a 500, nothing disclosed).
            self._close_intent(
                context,
                decision,
                provider,
                intent_index=intent_index,
                code="internal_error",
                detail=type(e).__name__,
            )
            raise
        receipt = self._record_disclosure(
            context,
            decision,
            provider,
            intent_index=intent_index,
            filtered=filtered,
            answer=answer,
            signature=signature,
        )
        return ExchangeOutcome(disclosure=disclosure, receipt=receipt, signature=signature)

    # --- steps --------------------------------------------------------------

    def _load_context(
        self, requester: Requester, request: ExchangeRequest, trace: TraceContext
    ) -> _Context:
        case, data_key = self._cases.load_with_key(request.case)
        subject_pseudonym = None
        if data_key is not None:
            subject_pseudonym = pseudonym(data_key, request.subject)
        return _Context(
            exchange_id=new_exchange_id(),
            now=self._clock.now(),
            trace=trace,
            requester=requester,
            request=request,
            case=case,
            subject_pseudonym=subject_pseudonym,
            data_key=data_key,
        )

    def _exchange_input(self, context: _Context) -> dict[str, Any]:
        request = context.request
        period = None
        if request.period is not None:
            period = period_facts(request.period.from_, request.period.to)
        return build_exchange_input(
            exchange_id=context.exchange_id,
            query=request.query,
            purpose=request.purpose,
            period=period,
            requester={
                "partner": context.requester.partner,
                "role": context.requester.role,
                "function": context.requester.function,
                "user": context.requester.user,
                "user_function": context.requester.user_function,
            },
            case=case_facts(context.case, self._convenant),
            subject_ref=request.subject,
        )

    def _decide_exchange(self, context: _Context, policy_input: dict[str, Any]) -> ExchangeDecision:
        try:
            result = self._evaluate(context, "ketenbroker/exchange/decision", policy_input)
            return parse_exchange_decision(result)
        except PolicyUnavailableError as e:
            self._fail_before_intent(context, None, e)

    def _evaluate(self, context: _Context, entrypoint: str, policy_input: dict[str, Any]) -> Any:
        """Ask the policy and keep the decision in the decision log before acting on it."""
        result = self._policy.evaluate(entrypoint, policy_input)
        self._decisions.record(
            decision_record(
                exchange=context.exchange_id,
                entrypoint=entrypoint,
                policy_version=self._policy.version,
                now=context.now,
                case_id=context.case.id if context.case else None,
                data_key=context.data_key,
                policy_input=policy_input,
                result=result,
            )
        )
        return result

    def _refuse(self, context: _Context, decision: ExchangeDecision) -> NoReturn:
        refusal = decision.refusal
        entry = self._entry(
            context,
            decision,
            provider=decision.provider,
            outcome="deny",
            reasons=[{"code": r.code, "reason": r.reason} for r in decision.refusals],
        )
        receipt = self._audit.record(entry)
        raise ExchangeRefusedError(
            refusal.code,
            refusal.public_reason,
            status=REFUSAL_STATUS.get(refusal.code, 403),
            receipt=receipt,
        )

    def _adapter_query(self, context: _Context, decision: ExchangeDecision) -> AdapterQuery:
        case = context.case
        exchange_type = self._convenant.exchange(context.request.query)
        subject = case.subject(context.request.subject) if case is not None else None
        if (
            case is None
            or case.address is None
            or exchange_type is None
            or subject is None
            or subject.name is None
            or subject.birth_date is None
        ):
            # The policy allowed what the register cannot back: deny, never guess.
            self._fail_before_intent(
                context,
                decision,
                PolicyUnavailableError("policy allowed an exchange the register cannot serve"),
            )
        period = context.request.period
        if period is None:
            # No period asked: the convenant's longest allowed window up to today.
            today = context.now.date()
            window = {
                "from": today - timedelta(days=exchange_type.max_period_days - 1),
                "to": today,
            }
        else:
            window = {"from": period.from_, "to": period.to}
        return AdapterQuery.model_validate(
            {
                "exchange": context.exchange_id,
                "query": context.request.query,
                "case": case.id,
                "subject": {
                    "ref": subject.ref,
                    "role": subject.role.value,
                    "name": subject.name,
                    "birth_date": subject.birth_date,
                },
                "address": {
                    "postcode": case.address.postcode,
                    "huisnummer": case.address.huisnummer,
                    "toevoeging": case.address.toevoeging,
                    "plaats": case.address.plaats,
                },
                "period": window,
                "fields": list(decision.fields),
            }
        )

    def _fetch(self, context: _Context, query: AdapterQuery, provider: str) -> AdapterAnswer:
        # AdapterUnavailableError / AdapterTrustError (unsigned, tampered,
        # another exchange's answer) close the intent in `run`.
        return self._adapters.fetch(
            provider=provider, query=query, trace=context.trace.child(), now=context.now
        )

    def _decide_disclosure(
        self,
        context: _Context,
        exchange_input: dict[str, Any],
        provider: str,
        answer: AdapterAnswer,
    ) -> DisclosureDecision:
        partner = self._convenant.partner(provider)
        policy_input = build_disclosure_input(
            exchange_input,
            provider={
                "partner": provider,
                "role": partner.role.value if partner else None,
                "function": partner.function if partner else None,
            },
            subject_known=answer.subject_known,
            fields=[
                answer_field_facts(name, field.category.value, field.value)
                for name, field in answer.fields.items()
            ],
        )
        result = self._evaluate(context, "ketenbroker/disclosure/decision", policy_input)
        return parse_disclosure_decision(result)

    def _check_deadline(self, context: _Context) -> None:
        """Refuse to disclose past the in-flight limit (see the module docstring)."""
        elapsed = self._clock.now() - context.now
        if elapsed > self._in_flight_limit:
            raise AdapterUnavailableError(
                f"expected the exchange to finish within {self._in_flight_limit},"
                f" it took {elapsed}; its intent may already be closed"
            )

    # --- audit entries ------------------------------------------------------

    def _record_intent(self, context: _Context, decision: ExchangeDecision, provider: str) -> int:
        """Log that the provider is about to be asked; raises AuditWriteError if it cannot."""
        entry = self._entry(context, decision, provider=provider, outcome=INTENT, reasons=[])
        return self._audit.record(entry).log_index

    def _record_disclosure(
        self,
        context: _Context,
        decision: ExchangeDecision,
        provider: str,
        *,
        intent_index: int,
        filtered: FilteredAnswer,
        answer: AdapterAnswer,
        signature: str,
    ) -> Receipt:
        entry = self._entry(
            context,
            decision,
            provider=provider,
            outcome="partial" if filtered.withheld_audit else "permit",
            reasons=[],
            fields_disclosed=list(filtered.data),
            fields_withheld=filtered.withheld_audit,
            payload_hash=filtered.payload_hash,
            answer_digest="sha256:" + sha256_hex(canonical_json(answer.to_document())),
            intent_index=intent_index,
            disclosure_signature_digest=disclosure_signature_digest(signature),
        )
        return self._audit.record(entry)

    def _fail_before_intent(
        self, context: _Context, decision: ExchangeDecision | None, error: KetenbrokerError
    ) -> NoReturn:
        """Log a refusal caused by a broken dependency before anything was fetched; re-raise."""
        entry = self._entry(
            context,
            decision,
            provider=decision.provider if decision else None,
            outcome="deny",
            reasons=[{"code": error.code, "reason": str(error)[:200]}],
        )
        # The caller gets a 503 either way and nothing was disclosed, so a
        # failing log here must not mask the original error.
        with contextlib.suppress(BackendUnavailableError):
            self._audit.record(entry)
        raise error

    def _close_intent(
        self,
        context: _Context,
        decision: ExchangeDecision,
        provider: str,
        *,
        intent_index: int,
        code: str,
        detail: str,
    ) -> None:
        """Close the intent as refused: the provider or the policy failed after it was logged."""
        entry = self._entry(
            context,
            decision,
            provider=provider,
            outcome="deny",
            reasons=[{"code": code, "reason": detail[:200]}],
            intent_index=intent_index,
        )
        # As above: the original error stands. If this write fails too, the
        # intent stays open and the next reconciliation closes it.
        with contextlib.suppress(BackendUnavailableError):
            self._audit.record(entry)

    def _entry(
        self,
        context: _Context,
        decision: ExchangeDecision | None,
        *,
        provider: str | None,
        outcome: str,
        reasons: list[dict[str, str]],
        fields_disclosed: list[str] | None = None,
        fields_withheld: list[dict[str, str]] | None = None,
        payload_hash: str | None = None,
        answer_digest: str | None = None,
        intent_index: int | None = None,
        disclosure_signature_digest: str | None = None,
    ) -> dict[str, Any]:
        return exchange_entry(
            time=context.now,
            exchange_id=context.exchange_id,
            trace_id=context.trace.trace_id,
            convenant={"id": self._convenant.id, "version": self._convenant.version},
            processing_activity=decision.processing_activity if decision else None,
            legal_basis=decision.legal_basis if decision else None,
            requester={
                "partner": context.requester.partner,
                "user": context.requester.user,
                "function": context.requester.user_function,
            },
            provider=provider,
            case=context.request.case,
            subject=context.subject_pseudonym,
            query=context.request.query,
            purpose=context.request.purpose,
            decision=outcome,
            reasons=reasons,
            fields_disclosed=fields_disclosed or [],
            fields_withheld=[
                {"field": w["field"], "code": w["code"]} for w in (fields_withheld or [])
            ],
            policy_version=self._policy.version,
            payload_hash=payload_hash,
            answer_signature_digest=answer_digest,
            flags=list(decision.flags) if decision else [],
            intent_index=intent_index,
            disclosure_signature_digest=disclosure_signature_digest,
        )
