"""A realistic multi-year audit log, generated from a seed (benchmarks and tests only).

What it does: `generate_entries` yields audit entries in exactly the shapes
`broker.audit.entries` builds (it calls `exchange_entry` and
`security_event`), for a region that has run its convenant for years:
thousands of cases, each with a few subjects (keyed pseudonyms), exchanges
of the convenant's types asked by the partners who may ask them, a mix of
permit, partial and deny with the policy's reason codes, and some refused
attempts at the edge. `populate` appends them to an `AuditStore` in batches.

What it does not: run the pipeline, the policy or an adapter, or carry any
personal data. Subjects are `ps_` pseudonyms, users are staff codes, and
where the pipeline records digests of what was disclosed these are random.
The entries are plausible, not simulated: the deny and partial mix and its
codes follow policies/exchange.rego and disclosure.rego by weight, without
evaluating the rules.

Why deterministic: one `random.Random(seed)` drives everything, so the same
arguments give the same log byte for byte and a measurement on it can be
repeated. Time runs through working hours (Monday to Friday, 07:00-17:00
UTC, about office hours in the Netherlands) with exponential gaps, so the
entries are strictly increasing in time and arrive in realistic bursts.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from broker.audit.entries import exchange_entry, security_event
from broker.audit.store import AuditStore
from broker.convenant import Convenant, load_convenant
from broker.convenant.model import ExchangeType, Partner, PartnerRole
from broker.settings import PROJECT_ROOT

EXAMPLE_CONVENANT = PROJECT_ROOT / "convenants" / "lekstroom.yaml"

# Working time: five days of ten hours a week. Offsets are counted in
# microseconds of working time (entries record time to the microsecond).
_DAY_START = timedelta(hours=7)
_WORKDAY_US = 10 * 3600 * 10**6
_WORKWEEK_US = 5 * _WORKDAY_US
_CALENDAR_TO_WORKING = (5 / 7) * (10 / 24)
_YEAR_US = 365.25 * 86400 * 10**6

# Shares of the whole log; the rest are exchanges. A few refused logins and
# bearer tokens a week next to a few hundred exchanges is what a broker
# behind mutual TLS and signed client assertions sees.
SECURITY_EVENT_SHARE = 0.02
# Case life: intake is the first part; a case runs months, rarely years.
CASE_MEAN_DAYS = 270
CASE_MIN_DAYS = 30
CASE_MAX_DAYS = 3 * 365
INTAKE_SHARE = 0.08  # of a case's life spent in status aangemeld
POLICY_RELEASE_DAYS = 120  # a new policy bundle (policy_version) about three times a year
URGENT_FLAG = "urgent_review"  # policies/data/rules.json, rules.urgent_flag

# Refusals by the exchange policy that can strike any request, with their
# chance per request and the reason policies/exchange.rego gives. Refusals
# that follow from the case (intake, no provider, closed, consent) are
# decided from the generated case instead.
_RANDOM_REFUSALS: tuple[tuple[str, float, str], ...] = (
    ("period_too_wide", 0.020, "The period may span at most {days} days for {exchange}."),
    ("subject_not_in_case", 0.010, "The subject is not a party of this case."),
    ("not_case_partner", 0.012, "You are not an active partner of this case."),
    (
        "purpose_mismatch",
        0.003,
        "The convenant allows exchange only for purpose aanpak_woonoverlast.",
    ),
)
PROVIDER_UNAVAILABLE_SHARE = 0.006  # an adapter down or late: the pipeline logs a deny
POLICY_UNAVAILABLE_SHARE = 0.001  # the policy engine unreachable: deny without a decision
MISFIT_SHARE = 0.1  # of the questions that do not fit the case, the share asked anyway
MAX_EXCHANGE_DRAWS = 8  # bounds the redraws; the last draw stands
CASE_CLOSED_SHARE = 0.01  # a partner still asking about a case closed recently
FREE_TEXT_WITHHELD_SHARE = 0.04  # a free-text field mentions a special category (R2)
EXTRA_FIELD_SHARE = 0.05  # an adapter sends a field the convenant does not list

# Free-text fields the special-category scan withholds now and then.
_FREE_TEXT_FIELDS = frozenset({"meldingen", "afspraken", "maatregelen"})
# What adapters sometimes send beyond the convenant's list (withheld, not_in_convenant).
_EXTRA_FIELDS = ("interne_notitie", "strafrechtelijke_antecedenten", "dossiernummer")

_USER_FUNCTION = {
    PartnerRole.gemeente: "casusregisseur woonoverlast",
    PartnerRole.politie: "wijkagent",
    PartnerRole.corporatie: "woonconsulent",
    PartnerRole.zorg: "hulpverlener",
}

# Refusals at the edge: (event, code, whether a known principal is named, detail).
_SECURITY_EVENTS: tuple[tuple[str, str, bool, str], ...] = (
    ("token_refused", "invalid_client", False, "unknown client id 'client-{n}'"),
    ("token_refused", "invalid_client", True, "client assertion signature does not verify"),
    ("token_refused", "invalid_client", True, "client assertion expired {n} seconds ago"),
    ("token_refused", "invalid_client", True, "client assertion jti was already used (replay)"),
    ("token_refused", "invalid_scope", True, "expected a scope the role allows, got audit:read"),
    ("token_refused", "invalid_request", False, "expected client_assertion_type, got none"),
    ("GET /v1/cases/{case_id}", "invalid_token", False, "token expired {n} seconds ago"),
    ("POST /v1/exchanges", "invalid_token", True, "token audience does not match the broker"),
    ("POST /v1/exchanges", "insufficient_scope", True, "expected scope exchange, got cases:read"),
    ("GET /v1/audit/entries", "insufficient_scope", True, "expected scope audit:read"),
)


@dataclass(frozen=True)
class _Case:
    id: str
    opens: int  # working-time offset, microseconds
    intake_until: int
    closes: int
    subjects: tuple[str, ...]  # pseudonyms; the first is the overlastgever
    corporation: Partner | None  # owner of the dwelling, when a corporation
    care: frozenset[str]  # zorg functions taking part
    urgent: bool
    consent_pending_until: int  # while the owning corporation has not consented
    investigation: bool  # police withhold antecedents (R3)
    mediation_consent: bool  # both parties consented to content feedback (R4)


class _Random:
    """The one random source, with the few draws the generator needs."""

    def __init__(self, seed: int) -> None:
        # Reproducible test data, not secrets: a seeded PRNG is the point here.
        self.rng = random.Random(seed)  # noqa: S311

    def hex(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


class _Region:
    """The convenant's partners and exchange types, looked up once."""

    def __init__(self, convenant: Convenant) -> None:
        self.convenant = convenant
        self.by_role: dict[PartnerRole, list[Partner]] = {}
        for partner in convenant.partners:
            self.by_role.setdefault(partner.role, []).append(partner)
        regisseurs = [p for p in convenant.partners if p.regisseur]
        self.regisseur = regisseurs[0]  # the convenant guarantees one (model validator)
        self.corporations = self.by_role.get(PartnerRole.corporatie, [])
        self.care = {p.function: p for p in self.by_role.get(PartnerRole.zorg, []) if p.function}
        self.exchanges = list(convenant.exchanges)
        # Police and housing questions dominate; care questions are rarer.
        weight = {
            PartnerRole.politie: 4.0,
            PartnerRole.corporatie: 3.0,
            PartnerRole.gemeente: 2.0,
            PartnerRole.zorg: 1.2,
        }
        self.exchange_weights = list(
            itertools.accumulate(weight[e.provider_role] for e in self.exchanges)
        )
        self.conv = {"id": convenant.id, "version": convenant.version}

    def staff(self, rnd: _Random, partner: Partner) -> dict[str, str | None]:
        """A requester member for someone at `partner`: a staff code, never a name."""
        prefix = partner.id.split("-", 1)[0]
        return {
            "partner": partner.id,
            "user": f"{prefix}-{rnd.rng.randrange(1, 25):03d}",
            "function": _USER_FUNCTION[partner.role],
        }


class _Clock:
    """Working-time offsets to wall-clock times (see the module docstring)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("expected a timezone-aware start, got a naive datetime")
        start = start.astimezone(UTC)
        monday = (start - timedelta(days=start.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        self._monday = monday
        into = start - monday
        days = into.days
        within_us = (into - timedelta(days=days) - _DAY_START) // timedelta(microseconds=1)
        if within_us >= _WORKDAY_US:  # after hours: the next working morning
            days, within_us = days + 1, 0
        within_us = max(within_us, 0)  # before hours: this morning
        if days >= 5:  # a weekend: Monday morning
            days, within_us = 5, 0
        # Never before `start`: the first entry comes after this offset.
        self.first = days * _WORKDAY_US + within_us

    def wall(self, offset: int) -> datetime:
        week, rest = divmod(offset, _WORKWEEK_US)
        day, us = divmod(rest, _WORKDAY_US)
        return self._monday + timedelta(days=7 * week + day, microseconds=us) + _DAY_START


def _make_cases(rnd: _Random, region: _Region, *, cases: int, first: int, span: int) -> list[_Case]:
    """`cases` cases opening uniformly over the span, sorted by opening."""
    made = []
    # A calendar day of a case's life is on average 5/7 of a working day.
    calendar_day = _WORKDAY_US * 5 / 7
    for _ in range(cases):
        opens = first + rnd.rng.randrange(max(span, 1))
        days = min(max(rnd.rng.expovariate(1 / CASE_MEAN_DAYS), CASE_MIN_DAYS), CASE_MAX_DAYS)
        length = int(days * calendar_day)
        corporation = (
            rnd.rng.choice(region.corporations)
            if region.corporations and rnd.chance(0.8)  # the rest: private landlords
            else None
        )
        care = frozenset(f for f in region.care if rnd.chance(0.5))
        made.append(
            _Case(
                id="case_" + rnd.hex(128),
                opens=opens,
                intake_until=opens + int(length * INTAKE_SHARE),
                closes=opens + length,
                subjects=tuple(
                    "ps_" + rnd.hex(128) for _ in range(rnd.rng.choice((1, 2, 2, 3, 4)))
                ),
                corporation=corporation,
                care=care,
                urgent=rnd.chance(0.03),
                consent_pending_until=opens
                + (int(length * 0.03) if corporation is not None else 0),
                investigation=rnd.chance(0.15),
                mediation_consent=rnd.chance(0.4),
            )
        )
    made.sort(key=lambda c: c.opens)
    return made


class _Cases:
    """The cases open at a moment: a sliding window over cases sorted by opening."""

    def __init__(self, cases: list[_Case]) -> None:
        self._pending = cases
        self._next = 0
        self._active: list[_Case] = []
        self.recently_closed: deque[_Case] = deque(maxlen=50)

    def pick(self, rnd: _Random, now: int) -> _Case:
        while self._next < len(self._pending) and self._pending[self._next].opens <= now:
            self._active.append(self._pending[self._next])
            self._next += 1
        while self._active:
            i = rnd.rng.randrange(len(self._active))
            case = self._active[i]
            if case.closes > now:
                return case
            # Closed: swap-remove, O(1).
            self._active[i] = self._active[-1]
            self._active.pop()
            self.recently_closed.append(case)
        if self._next < len(self._pending):
            # Nothing open yet (the very start): open the next case early.
            case = self._pending[self._next]
            self._next += 1
            self._active.append(case)
            return case
        # Every case has closed: the last one stays in use rather than none.
        return self.recently_closed[-1] if self.recently_closed else self._pending[-1]


def _provider(region: _Region, case: _Case, et: ExchangeType) -> Partner | None:
    """The partner of `case` that answers `et`, as policies/exchange.rego picks it."""
    if et.provider_role is PartnerRole.corporatie:
        return case.corporation
    if et.provider_role is PartnerRole.gemeente:
        return region.regisseur
    if et.provider_role is PartnerRole.zorg:
        if et.provider_function in case.care:
            return region.care.get(et.provider_function or "")
        return None
    candidates = region.by_role.get(et.provider_role, [])
    return candidates[0] if candidates else None


def _requester(rnd: _Random, region: _Region, case: _Case, et: ExchangeType) -> Partner:
    if et.regisseur_only:
        return region.regisseur
    role = rnd.rng.choice(et.requester_roles)
    if role is PartnerRole.corporatie and case.corporation is not None:
        return case.corporation
    if role is PartnerRole.gemeente:
        return region.regisseur
    return rnd.rng.choice(region.by_role.get(role) or [region.regisseur])


def _withheld(rnd: _Random, case: _Case, et: ExchangeType) -> list[dict[str, str]]:
    """Fields the disclosure policy would withhold, with their codes (audit form)."""
    withheld = []
    fields = set(et.fields)
    if et.provider_role is PartnerRole.politie and case.investigation:
        withheld += [
            {"field": f, "code": "investigation_running"}
            for f in fields
            if f == "bekend_overlast_antecedenten"
        ]
    if et.provider_role is PartnerRole.zorg and rnd.chance(0.3):
        withheld += [
            {"field": f, "code": "care_not_known"} for f in fields if f == "hulpverlener_naam"
        ]
    if et.consent_fields and not case.mediation_consent:
        withheld += [{"field": f, "code": "mediation_consent_missing"} for f in et.consent_fields]
    free = sorted(fields & _FREE_TEXT_FIELDS - {w["field"] for w in withheld})
    if free and rnd.chance(FREE_TEXT_WITHHELD_SHARE):
        code = "text_too_long" if rnd.chance(0.1) else "special_category_text"
        withheld.append({"field": rnd.rng.choice(free), "code": code})
    if rnd.chance(EXTRA_FIELD_SHARE):
        withheld.append({"field": rnd.rng.choice(_EXTRA_FIELDS), "code": "not_in_convenant"})
    return withheld


class _Generator:
    """The state of one generated log: its random source, region, cases and clock."""

    def __init__(self, *, rnd: _Random, region: _Region, cases: _Cases, first: int) -> None:
        self.rnd = rnd
        self.region = region
        self.cases = cases
        self.first = first
        self._policy_versions: list[str] = []

    def policy_version(self, now: int) -> str:
        """The policy bundle in force at `now`: a new one every POLICY_RELEASE_DAYS."""
        release = (now - self.first) // (POLICY_RELEASE_DAYS * _WORKDAY_US * 5 // 7)
        while len(self._policy_versions) <= release:
            self._policy_versions.append("sha256:" + self.rnd.hex(256))
        return self._policy_versions[release]

    def security_event(self, time: datetime) -> dict[str, Any]:
        rng = self.rnd.rng
        event, code, named, detail = rng.choice(_SECURITY_EVENTS)
        principal = rng.choice(self.region.convenant.principal_ids()) if named else None
        return security_event(
            time=time,
            event=event,
            code=code,
            principal=principal,
            trace_id=self.rnd.hex(128),
            detail=detail.format(n=rng.randrange(1, 1000)),
        )

    def choose_exchange(self, case: _Case, now: int) -> tuple[ExchangeType, Partner | None]:
        """An exchange type for `case` and the partner that answers it.

        Caseworkers mostly ask what their screen offers: a type that some
        partner of the case can answer and that the case's status allows.
        One question in ten that does not fit is asked anyway (and denied).
        """
        rnd, region = self.rnd, self.region
        for _ in range(MAX_EXCHANGE_DRAWS):
            pick = rnd.rng.random() * region.exchange_weights[-1]
            et = region.exchanges[bisect.bisect_right(region.exchange_weights, pick)]
            provider = _provider(region, case, et)
            fits = provider is not None and (et.intake or now >= case.intake_until)
            if fits or rnd.chance(MISFIT_SHARE):
                break
        return et, provider

    def exchange(self, now: int, time: datetime) -> dict[str, Any]:
        rnd, region = self.rnd, self.region
        case = self.cases.pick(rnd, now)
        closed = False
        if self.cases.recently_closed and rnd.chance(CASE_CLOSED_SHARE):
            case, closed = rnd.rng.choice(self.cases.recently_closed), True
        et, provider = self.choose_exchange(case, now)
        requester = _requester(rnd, region, case, et)
        provider_id = provider.id if provider is not None else None
        # The overlastgever is asked about most; melders and neighbours now and then.
        subject = case.subjects[0] if rnd.chance(0.8) else rnd.rng.choice(case.subjects)
        common: dict[str, Any] = {
            "time": time,
            "exchange_id": "ex_" + rnd.hex(128),
            "trace_id": rnd.hex(128),
            "convenant": region.conv,
            "requester": region.staff(rnd, requester),
            "case": case.id,
            "subject": subject,
            "query": et.id,
            "purpose": region.convenant.purpose,
            "policy_version": self.policy_version(now),
        }
        if rnd.chance(POLICY_UNAVAILABLE_SHARE):
            # No decision at all: the pipeline logs the failure without basis or provider.
            return exchange_entry(
                **common,
                processing_activity=None,
                legal_basis=None,
                provider=None,
                decision="deny",
                reasons=[
                    {"code": "policy_unavailable", "reason": "the policy engine did not answer"}
                ],
                fields_disclosed=[],
                fields_withheld=[],
                payload_hash=None,
            )
        decided: dict[str, Any] = {
            **common,
            "processing_activity": et.processing_activity,
            "legal_basis": et.legal_basis.model_dump(),
            "provider": provider_id,
            "flags": [URGENT_FLAG] if case.urgent else [],
        }
        refusals = _refusals(rnd, case, et, now=now, closed=closed, answerable=provider is not None)
        if not refusals and rnd.chance(PROVIDER_UNAVAILABLE_SHARE):
            refusals = [("provider_unavailable", f"adapter {provider_id} did not answer in time")]
        if refusals:
            return exchange_entry(
                **decided,
                decision="deny",
                reasons=[{"code": c, "reason": r} for c, r in refusals],
                fields_disclosed=[],
                fields_withheld=[],
                payload_hash=None,
            )
        withheld = _withheld(rnd, case, et)
        held = {w["field"] for w in withheld}
        return exchange_entry(
            **decided,
            decision="partial" if withheld else "permit",
            reasons=[],
            fields_disclosed=[f for f in et.fields if f not in held],
            fields_withheld=withheld,
            payload_hash="sha256:" + rnd.hex(256),
            answer_signature_digest="sha256:" + rnd.hex(256),
        )


def _refusals(
    rnd: _Random, case: _Case, et: ExchangeType, *, now: int, closed: bool, answerable: bool
) -> list[tuple[str, str]]:
    """The exchange policy's refusals for this request, as (code, reason)."""
    refusals = []
    if closed:
        refusals.append(("case_closed", "The case is closed; nothing is exchanged any more."))
    if now < case.intake_until and not et.intake:
        refusals.append(
            ("exchange_not_allowed", f"During intake (aangemeld) {et.id} is not yet exchanged.")
        )
    if not answerable:
        refusals.append(
            ("exchange_not_allowed", "No partner of this case can answer this exchange.")
        )
    if now < case.consent_pending_until:
        refusals.append(
            ("consent_pending", "The corporation owning the dwelling has not consented yet.")
        )
    for code, share, reason in _RANDOM_REFUSALS:
        if rnd.chance(share):
            refusals.append((code, reason.format(days=et.max_period_days, exchange=et.id)))
    return refusals


def load_example_convenant() -> Convenant:
    """The example convenant of the fictional region Lekstroom."""
    return load_convenant(EXAMPLE_CONVENANT)


def generate_entries(
    *,
    count: int,
    start: datetime,
    years: float,
    seed: int,
    partners: Convenant,
    cases: int,
) -> Iterator[dict[str, Any]]:
    """`count` audit entries over about `years` from `start`, the same for the same seed.

    `partners` is the convenant whose partners, exchange types, fields and
    legal bases the log uses; `cases` how many cases open over the years.
    The entries come without `"index"`: the store adds it. The last entry
    may fall a little after `start + years` (the gaps are random).
    """
    if count < 0:
        raise ValueError(f"expected count >= 0, got {count}")
    if cases < 1:
        raise ValueError(f"expected cases >= 1 (exchanges belong to a case), got {cases}")
    if years <= 0:
        raise ValueError(f"expected years > 0, got {years}")
    rnd = _Random(seed)
    region = _Region(partners)
    clock = _Clock(start)
    span = int(years * _YEAR_US * _CALENDAR_TO_WORKING)
    generator = _Generator(
        rnd=rnd,
        region=region,
        cases=_Cases(_make_cases(rnd, region, cases=cases, first=clock.first, span=span)),
        first=clock.first,
    )
    mean_gap = span / max(count, 1)
    rng = rnd.rng
    now = clock.first
    for _ in range(count):
        # Strictly increasing: at least one microsecond apart.
        now += max(1, int(rng.expovariate(1.0) * mean_gap))
        time = clock.wall(now)
        if rng.random() < SECURITY_EVENT_SHARE:
            yield generator.security_event(time)
        else:
            yield generator.exchange(now, time)


def populate(
    store: AuditStore,
    entries: Iterable[dict[str, Any]],
    batch: int = 10_000,
    *,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Append `entries` to `store`, `batch` per transaction; how many were appended.

    `on_batch` is called with the running total after each batch (progress).
    """
    if batch < 1:
        raise ValueError(f"expected batch >= 1, got {batch}")
    done = 0
    iterator = iter(entries)
    while chunk := list(itertools.islice(iterator, batch)):
        store.append(chunk)
        done += len(chunk)
        if on_batch is not None:
            on_batch(done)
    return done


def default_cases(count: int) -> int:
    """Cases for a log of `count` entries: a few hundred entries per case, at least 1 000."""
    return max(1_000, count // 200)


__all__ = [
    "EXAMPLE_CONVENANT",
    "default_cases",
    "generate_entries",
    "load_example_convenant",
    "populate",
]
