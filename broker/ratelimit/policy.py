"""Which rate limits apply to a request: pure, no I/O (style.md §1).

What it does: `RateLimits` holds the numbers; `checks_for` turns one
request (the calling partner, and for an exchange the acting user, case and
subject) into the ordered `Check`s the guard runs against a limiter.

What it does not: count anything (`broker.ratelimit.limiter`) or refuse
anything (`broker.ratelimit.guard`).

Why these checks (issue 5, point 6): bulk probing of cases or subjects is
the abuse pattern, by a stolen partner key or by one curious employee.
Request rates bound the speed of any script; the distinct-pair caps catch
enumeration however slowly it runs, because honest work keeps returning to
the same few cases and subjects while probing touches a new one each time;
the daily quota bounds what one partner key can extract before anyone
looks. The acting user (`on_behalf_of.user`) is the partner's own claim,
not authenticated by the broker, so a partner could invent users: every
per-user limit has a per-partner limit above it that inventing users does
not escape.

Keys: the partner id is the authenticated principal and appears as is.
The acting user, case and subject are hashed (domain-separated SHA-256,
128 bits) before they reach a key or member: keys stay bounded in length
whatever a path segment holds, no delimiter in a value can make two keys
collide, and a listing of Redis shows no user ids or subject references.
The hash is not a secret: anyone holding the ids can recompute it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

MINUTE = 60
HOUR = 3_600
DAY = 86_400

# The sliding log keeps one entry per admitted request (limiter.py), so a
# limit is also a bound on one key's memory: 10 000 entries is about 1 MB in
# Redis, and far above any number below.
MAX_LIMIT = 10_000


class RateLimits(BaseModel):
    """How much one partner, and one acting user, may ask of the broker.

    The numbers come from the work the convenant covers (the domain notes,
    seeds 001 and 002): a municipality runs tens of complex nuisance cases a
    year, discussed in a case meeting every two weeks; a case has a handful
    of subjects (a household, a landlord); an exchange is a deliberate step
    by a named employee. Every default is several times what that work
    needs at its busiest and far below what a script enumerating cases or
    subjects needs. Raise a number in the settings, not here, when a
    partner's real use reaches it; the refusals in the audit log say which.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # One employee reading answers at human speed: one exchange every three
    # seconds, sustained for a minute, is already faster than anyone reads.
    user_requests_per_minute: int = Field(default=20, ge=1, le=MAX_LIMIT)
    # A partner's whole system through one client: a team preparing a case
    # meeting plus a dashboard polling the status of thirty cases once a
    # minute fits in 120 (two a second); a scraper wants hundreds a second.
    partner_requests_per_minute: int = Field(default=120, ge=1, le=MAX_LIMIT)
    # Preparing one case meeting: about five cases with up to four subjects
    # each is twenty (case, subject) pairs. More new pairs than that within
    # the hour is not preparing a meeting; it is looking people up.
    user_distinct_pairs_per_hour: int = Field(default=20, ge=1, le=MAX_LIMIT)
    # Five employees of one partner each at their cap at once. Also the
    # ceiling for a partner that invents acting users to escape the cap above.
    partner_distinct_pairs_per_hour: int = Field(default=100, ge=1, le=MAX_LIMIT)
    # Case reads (GET /v1/cases/{id}, .../status): a partner takes part in a
    # few dozen open cases; reading a hundred different case ids within an
    # hour is probing which ids exist.
    partner_distinct_cases_per_hour: int = Field(default=100, ge=1, le=MAX_LIMIT)
    # Exchanges per partner per rolling day. Even a large municipality's
    # busiest day is well under a hundred exchanges; 1 000 leaves ten times
    # that and caps what one stolen partner key can extract in a day.
    partner_exchanges_per_day: int = Field(default=1_000, ge=1, le=MAX_LIMIT)


@dataclass(frozen=True)
class Check:
    """One limit for one request.

    `member` None counts every request; otherwise only distinct members
    count. `limit_name` names the `RateLimits` field that set the number, so
    a refusal in the audit log says which setting to look at.
    """

    limit_name: str
    key: str
    limit: int
    window_seconds: int
    member: str | None = None


def checks_for(
    limits: RateLimits,
    *,
    partner: str,
    acting_user: str | None,
    case: str,
    subject: str | None,
) -> Sequence[Check]:
    """The checks for an exchange (acting user and subject given) or a case read (neither).

    Order matters, because a check that admits has counted the request even
    when a later one refuses it. The narrowest come first, so one user
    hammering the broker is refused before using up the partner's budget
    that colleagues share; the distinct caps come after the rates, so a
    request refused for speed takes no slot for its pair; the daily quota
    comes last, so only a request that passed everything else uses it.
    """
    if not partner:
        raise ValueError("expected the calling partner's id, got ''")
    if not case:
        raise ValueError("expected a case id, got ''")
    if (acting_user is None) != (subject is None):
        # Half an exchange would skip its per-user and pair checks: a caller bug.
        raise ValueError(
            "expected an acting user and a subject (an exchange) or neither (a case read),"
            f" got acting_user={acting_user!r} and subject={subject!r}"
        )
    partner_rate = Check(
        "partner_requests_per_minute",
        f"ratelimit:rate:partner:{partner}",
        limits.partner_requests_per_minute,
        MINUTE,
    )
    if acting_user is None or subject is None:
        return (
            partner_rate,
            Check(
                "partner_distinct_cases_per_hour",
                f"ratelimit:distinct-cases:partner:{partner}",
                limits.partner_distinct_cases_per_hour,
                HOUR,
                member=_digest("case", case),
            ),
        )
    if not acting_user or not subject:
        raise ValueError(
            f"expected a non-empty acting user and subject, got {acting_user!r} and {subject!r}"
        )
    user = _digest("user", acting_user)
    pair = _digest("pair", case, subject)
    return (
        Check(
            "user_requests_per_minute",
            f"ratelimit:rate:user:{partner}:{user}",
            limits.user_requests_per_minute,
            MINUTE,
        ),
        partner_rate,
        Check(
            "user_distinct_pairs_per_hour",
            f"ratelimit:distinct-pairs:user:{partner}:{user}",
            limits.user_distinct_pairs_per_hour,
            HOUR,
            member=pair,
        ),
        Check(
            "partner_distinct_pairs_per_hour",
            f"ratelimit:distinct-pairs:partner:{partner}",
            limits.partner_distinct_pairs_per_hour,
            HOUR,
            member=pair,
        ),
        Check(
            "partner_exchanges_per_day",
            f"ratelimit:quota:exchanges:partner:{partner}",
            limits.partner_exchanges_per_day,
            DAY,
        ),
    )


def _digest(kind: str, *parts: str) -> str:
    # Domain separation by kind, and each part length-prefixed, so
    # ("ab", "c") and ("a", "bc") hash apart, and a user never equals a case.
    h = hashlib.sha256(b"ketenbroker/ratelimit/" + kind.encode() + b"\x00")
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()[:32]
