"""What the DPO's dashboard counts, as pure functions over audit entries.

What it does: one pass over entries in index order (`summarise`) gives the
totals, exchanges and refusals per day or ISO week, refusals by reason code,
disclosures by recipient, provider and legal basis, the special-category
blocks (R2), and the latest refusals. `about_subject` and
`cases_of_subject` serve the search by subject pseudonym.

What it does not: read the log, check its integrity (`AuditLog.verify`
does), or render anything (`views.py`). Values stay as the entries hold
them, untrusted strings included; escaping is the renderer's job.

Why one streaming pass: the dashboard reads the whole log on each request,
page by page, and never holds it in memory; every figure on the page then
comes from the same entries, up to the same checkpoint.

Counting rules (the page says them too):

* an *exchange* is an entry of kind `exchange` with decision `permit` or
  `partial`; a *refusal* is any entry with decision `deny`, an exchange
  refused by the policy or a request refused at the edge (`security_event`);
* a refusal counts once under each distinct reason code it carries; a
  refusal without a code counts under `no_reason_recorded` (a finding in
  itself: every refusal should say why);
* a *disclosure* is an exchange that disclosed at least one field; it is
  counted under its recipient (requester), provider and legal basis;
* retention entries (`kind: retention`, decision `destroyed`) and holds
  (`kind: hold`) are counted as such, and are neither exchanges nor refusals;
* a *special-category block* is one withheld field with code
  `special_category`, `special_category_text` or `unknown_category` (R2;
  policies/disclosure.rego).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

EXCHANGED = frozenset({"permit", "partial"})
DENY = "deny"
RETENTION, DESTROYED = "retention", "destroyed"  # broker/retention/job.py
HOLD = "hold"  # broker/audit/holds.py
SPECIAL_CATEGORY_CODES = ("special_category", "special_category_text", "unknown_category")
NO_REASON = "no_reason_recorded"
UNKNOWN = "onbekend"  # a missing partner or basis in an entry: shown, not hidden

Unit = Literal["day", "week"]
UNITS: tuple[Unit, ...] = ("day", "week")
MAX_PERIODS = 366  # a year of days; bounds the chart whatever the query string says
DEFAULT_RECENT = 10


@dataclass(frozen=True)
class PeriodCount:
    """Exchanges and refusals in one day or ISO week starting at `start`."""

    start: date
    exchanged: int
    refused: int


@dataclass(frozen=True)
class ReasonCount:
    """Refusals under one reason code, split by where they happened."""

    code: str
    exchange: int  # refused by the policy in the exchange pipeline
    edge: int  # refused at the edge: token endpoint, bearer token, request checks

    @property
    def total(self) -> int:
        return self.exchange + self.edge


@dataclass(frozen=True, order=True)
class LegalBasisKey:
    law: str
    article: str
    convenant_article: str


@dataclass(frozen=True)
class DisclosureCount:
    """Disclosures from `provider` to `recipient` on one legal basis."""

    recipient: str
    provider: str
    legal_basis: LegalBasisKey
    exchanges: int
    fields_disclosed: int
    fields: tuple[str, ...]  # the distinct field names, sorted


@dataclass(frozen=True)
class SpecialBlock:
    """One field held back as special-category data (R2)."""

    index: int | None
    time: str
    case: str
    requester: str
    provider: str
    field: str
    code: str


@dataclass(frozen=True)
class SpecialCategorySummary:
    by_code: tuple[tuple[str, int], ...]  # every code of SPECIAL_CATEGORY_CODES, in that order
    by_provider: tuple[tuple[str, int], ...]  # most blocks first
    recent: tuple[SpecialBlock, ...]  # newest first

    @property
    def total(self) -> int:
        return sum(count for _, count in self.by_code)


@dataclass(frozen=True)
class Refusal:
    """One refusal as the list of latest refusals shows it."""

    index: int | None
    time: str
    kind: str  # exchange | security_event
    what: str  # the exchange type asked, or the refused route
    partner: str
    case: str
    codes: tuple[str, ...]
    detail: str


@dataclass(frozen=True)
class Totals:
    entries: int
    exchanged: int  # permit + partial
    permitted: int
    partial: int
    refused: int  # every deny
    refused_exchanges: int
    refused_at_edge: int
    destroyed: int  # retention evidence: a case's personal data destroyed (R7)
    holds: int  # entries a provider kept out of access reports (broker.audit.holds)


@dataclass(frozen=True)
class LogSummary:
    totals: Totals
    unit: Unit
    activity: tuple[PeriodCount, ...]  # oldest first, no gaps
    refusals_by_reason: tuple[ReasonCount, ...]  # most refusals first
    disclosures: tuple[DisclosureCount, ...]  # most exchanges first
    special_categories: SpecialCategorySummary
    recent_refusals: tuple[Refusal, ...]  # newest first
    first_index: int | None
    last_index: int | None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _index(entry: Mapping[str, Any]) -> int | None:
    value = entry.get("index")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _partner(value: object) -> str:
    if isinstance(value, Mapping):
        partner = value.get("partner")
        if isinstance(partner, str) and partner:
            return partner
    return UNKNOWN


def _reason_codes(entry: Mapping[str, Any]) -> tuple[str, ...]:
    reasons = entry.get("reasons")
    codes: list[str] = []
    if isinstance(reasons, list):
        for reason in reasons:
            code = reason.get("code") if isinstance(reason, Mapping) else None
            if isinstance(code, str) and code and code not in codes:
                codes.append(code)
    return tuple(codes) or (NO_REASON,)


def _reason_detail(entry: Mapping[str, Any]) -> str:
    reasons = entry.get("reasons")
    if not isinstance(reasons, list):
        return ""
    details = []
    for reason in reasons:
        if isinstance(reason, Mapping):
            # exchange refusals say `reason`, security events `detail`
            text = reason.get("detail", reason.get("reason"))
            if isinstance(text, str) and text:
                details.append(text)
    return "; ".join(details)


def _legal_basis(value: object) -> LegalBasisKey:
    if not isinstance(value, Mapping):
        return LegalBasisKey(UNKNOWN, "", "")
    return LegalBasisKey(
        law=_text(value.get("law")) or UNKNOWN,
        article=_text(value.get("article")),
        convenant_article=_text(value.get("convenant_article")),
    )


def entry_day(entry: Mapping[str, Any]) -> date | None:
    """The UTC day of an entry's `time`, or None when it is not an RFC 3339 time."""
    try:
        moment = datetime.fromisoformat(_text(entry.get("time")))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.astimezone(UTC).date()


def period_start(day: date, unit: Unit) -> date:
    """The first day of the period holding `day`: itself, or the Monday of its ISO week."""
    return day if unit == "day" else day - timedelta(days=day.weekday())


def period_starts(*, today: date, unit: Unit, periods: int) -> list[date]:
    """The `periods` period starts ending with the one holding `today`, oldest first."""
    if not 1 <= periods <= MAX_PERIODS:
        raise ValueError(f"expected 1 <= periods <= {MAX_PERIODS}, got {periods!r}")
    if unit not in UNITS:
        raise ValueError(f"expected unit in {UNITS!r}, got {unit!r}")
    step = timedelta(days=1 if unit == "day" else 7)
    last = period_start(today, unit)
    return [last - step * n for n in range(periods - 1, -1, -1)]


class SummaryBuilder:
    """The accumulator behind `summarise`: feed entries in index order, then `build`."""

    def __init__(
        self, *, today: date, unit: Unit = "day", periods: int = 14, recent: int = DEFAULT_RECENT
    ) -> None:
        if recent < 0:
            raise ValueError(f"expected recent >= 0, got {recent!r}")
        self._unit = unit
        self._starts = period_starts(today=today, unit=unit, periods=periods)
        self._exchanged_by_period: Counter[date] = Counter()
        self._refused_by_period: Counter[date] = Counter()
        self._totals: Counter[str] = Counter()
        self._reasons_exchange: Counter[str] = Counter()
        self._reasons_edge: Counter[str] = Counter()
        self._disclosures: Counter[tuple[str, str, LegalBasisKey]] = Counter()
        self._fields_disclosed: Counter[tuple[str, str, LegalBasisKey]] = Counter()
        self._field_names: dict[tuple[str, str, LegalBasisKey], set[str]] = {}
        self._special_by_code: Counter[str] = Counter()
        self._special_by_provider: Counter[str] = Counter()
        self._special_recent: deque[SpecialBlock] = deque(maxlen=recent)
        self._refusals_recent: deque[Refusal] = deque(maxlen=recent)
        self._first_index: int | None = None
        self._last_index: int | None = None

    def add(self, entry: Mapping[str, Any]) -> None:
        index = _index(entry)
        if self._first_index is None:
            self._first_index = index
        self._last_index = index
        self._totals["entries"] += 1
        kind, decision = _text(entry.get("kind")), _text(entry.get("decision"))
        day = entry_day(entry)
        start = period_start(day, self._unit) if day is not None else None
        if kind == "exchange" and decision in EXCHANGED:
            self._totals["exchanged"] += 1
            self._totals["permitted" if decision == "permit" else "partial"] += 1
            if start is not None:
                self._exchanged_by_period[start] += 1
            self._add_disclosure(entry)
            self._add_special_blocks(entry, index)
        elif decision == DENY:
            self._add_refusal(entry, index, kind)
            if start is not None:
                self._refused_by_period[start] += 1
        elif kind == RETENTION and decision == DESTROYED:
            self._totals["destroyed"] += 1
        elif kind == HOLD:
            self._totals["holds"] += 1

    def _add_refusal(self, entry: Mapping[str, Any], index: int | None, kind: str) -> None:
        self._totals["refused"] += 1
        at_edge = kind != "exchange"
        self._totals["refused_at_edge" if at_edge else "refused_exchanges"] += 1
        codes = _reason_codes(entry)
        counter = self._reasons_edge if at_edge else self._reasons_exchange
        counter.update(codes)
        self._refusals_recent.append(
            Refusal(
                index=index,
                time=_text(entry.get("time")),
                kind=kind or UNKNOWN,
                what=_text(entry.get("event" if at_edge else "query")),
                partner=_partner(entry.get("requester")),
                case=_text(entry.get("case")),
                codes=codes,
                detail=_reason_detail(entry),
            )
        )

    def _add_disclosure(self, entry: Mapping[str, Any]) -> None:
        fields = entry.get("fields_disclosed")
        names = [f for f in fields if isinstance(f, str)] if isinstance(fields, list) else []
        if not names:
            return  # an answer with nothing in it disclosed nothing
        key = (
            _partner(entry.get("requester")),
            _partner(entry.get("provider")),
            _legal_basis(entry.get("legal_basis")),
        )
        self._disclosures[key] += 1
        self._fields_disclosed[key] += len(names)
        self._field_names.setdefault(key, set()).update(names)

    def _add_special_blocks(self, entry: Mapping[str, Any], index: int | None) -> None:
        withheld = entry.get("fields_withheld")
        if not isinstance(withheld, list):
            return
        provider = _partner(entry.get("provider"))
        for item in withheld:
            if not isinstance(item, Mapping):
                continue
            code = item.get("code")
            if code not in SPECIAL_CATEGORY_CODES:
                continue
            self._special_by_code[code] += 1
            self._special_by_provider[provider] += 1
            self._special_recent.append(
                SpecialBlock(
                    index=index,
                    time=_text(entry.get("time")),
                    case=_text(entry.get("case")),
                    requester=_partner(entry.get("requester")),
                    provider=provider,
                    field=_text(item.get("field")),
                    code=code,
                )
            )

    def build(self) -> LogSummary:
        t = self._totals
        reasons = [
            ReasonCount(
                code=code, exchange=self._reasons_exchange[code], edge=self._reasons_edge[code]
            )
            for code in set(self._reasons_exchange) | set(self._reasons_edge)
        ]
        disclosures = [
            DisclosureCount(
                recipient=key[0],
                provider=key[1],
                legal_basis=key[2],
                exchanges=count,
                fields_disclosed=self._fields_disclosed[key],
                fields=tuple(sorted(self._field_names[key])),
            )
            for key, count in self._disclosures.items()
        ]
        return LogSummary(
            totals=Totals(
                entries=t["entries"],
                exchanged=t["exchanged"],
                permitted=t["permitted"],
                partial=t["partial"],
                refused=t["refused"],
                refused_exchanges=t["refused_exchanges"],
                refused_at_edge=t["refused_at_edge"],
                destroyed=t["destroyed"],
                holds=t["holds"],
            ),
            unit=self._unit,
            activity=tuple(
                PeriodCount(
                    start=start,
                    exchanged=self._exchanged_by_period[start],
                    refused=self._refused_by_period[start],
                )
                for start in self._starts
            ),
            refusals_by_reason=tuple(sorted(reasons, key=lambda r: (-r.total, r.code))),
            disclosures=tuple(
                sorted(
                    disclosures,
                    key=lambda d: (-d.exchanges, d.recipient, d.provider, d.legal_basis),
                )
            ),
            special_categories=SpecialCategorySummary(
                by_code=tuple(
                    (code, self._special_by_code[code]) for code in SPECIAL_CATEGORY_CODES
                ),
                by_provider=tuple(
                    sorted(self._special_by_provider.items(), key=lambda item: (-item[1], item[0]))
                ),
                recent=tuple(reversed(self._special_recent)),
            ),
            recent_refusals=tuple(reversed(self._refusals_recent)),
            first_index=self._first_index,
            last_index=self._last_index,
        )


def summarise(
    entries: Iterable[Mapping[str, Any]],
    *,
    today: date,
    unit: Unit = "day",
    periods: int = 14,
    recent: int = DEFAULT_RECENT,
) -> LogSummary:
    """Every figure of the dashboard from one pass over `entries` (index order)."""
    builder = SummaryBuilder(today=today, unit=unit, periods=periods, recent=recent)
    for entry in entries:
        builder.add(entry)
    return builder.build()


def about_subject(
    entries: Iterable[Mapping[str, Any]], pseudonym: str
) -> Iterator[Mapping[str, Any]]:
    """The entries whose `subject` is exactly `pseudonym`; fail closed on an empty one."""
    if not pseudonym:
        return
    for entry in entries:
        if entry.get("subject") == pseudonym:
            yield entry


def cases_of_subject(entries: Iterable[Mapping[str, Any]], pseudonym: str) -> list[str]:
    """The cases in whose entries `pseudonym` appears, in order of first appearance."""
    cases: dict[str, None] = {}
    for entry in about_subject(entries, pseudonym):
        case = entry.get("case")
        if isinstance(case, str) and case:
            cases.setdefault(case, None)
    return list(cases)
