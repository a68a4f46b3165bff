"""Which limits apply to which request: pure functions over values, no limiter."""

from __future__ import annotations

import pydantic
import pytest

from broker.ratelimit.policy import DAY, HOUR, MAX_LIMIT, MINUTE, RateLimits, checks_for

PARTNER = "gemeente-lekstroom"


def test_an_exchange_meets_user_then_partner_limits_and_the_quota_last() -> None:
    checks = checks_for(
        RateLimits(), partner=PARTNER, acting_user="j.jansen", case="C-1", subject="S-1"
    )
    assert [(c.limit_name, c.limit, c.window_seconds) for c in checks] == [
        ("user_requests_per_minute", 20, MINUTE),
        ("partner_requests_per_minute", 120, MINUTE),
        ("user_distinct_pairs_per_hour", 20, HOUR),
        ("partner_distinct_pairs_per_hour", 100, HOUR),
        ("partner_exchanges_per_day", 1_000, DAY),
    ]
    # The rates and the quota count requests; the caps count distinct pairs.
    assert [c.member is None for c in checks] == [True, True, False, False, True]


def test_a_case_read_meets_the_partner_rate_and_the_distinct_case_cap() -> None:
    checks = checks_for(RateLimits(), partner=PARTNER, acting_user=None, case="C-1", subject=None)
    assert [(c.limit_name, c.window_seconds, c.member is None) for c in checks] == [
        ("partner_requests_per_minute", MINUTE, True),
        ("partner_distinct_cases_per_hour", HOUR, False),
    ]


def test_case_reads_and_exchanges_share_one_partner_rate() -> None:
    read = checks_for(RateLimits(), partner=PARTNER, acting_user=None, case="C-1", subject=None)
    exchange = checks_for(
        RateLimits(), partner=PARTNER, acting_user="j.jansen", case="C-1", subject="S-1"
    )
    assert read[0].key == exchange[1].key == f"ratelimit:rate:partner:{PARTNER}"


def test_one_pair_is_one_member_for_the_user_and_the_partner_cap() -> None:
    checks = checks_for(
        RateLimits(), partner=PARTNER, acting_user="j.jansen", case="C-1", subject="S-1"
    )
    assert checks[2].member == checks[3].member


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # Length-prefixed parts: moving a character across the boundary is another pair.
        (("ab", "c"), ("a", "bc")),
        # Same subject in another case is another pair (a new case to probe).
        (("C-1", "S-1"), ("C-2", "S-1")),
        # Same case, another subject: the enumeration the cap is for.
        (("C-1", "S-1"), ("C-1", "S-2")),
    ],
)
def test_distinct_pairs_get_distinct_members(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    def member(case: str, subject: str) -> str | None:
        return checks_for(
            RateLimits(), partner=PARTNER, acting_user="u", case=case, subject=subject
        )[2].member

    assert member(*first) != member(*second)


def test_keys_hold_no_user_case_or_subject_text_and_stay_short() -> None:
    # A path segment can carry anything; keys and members must not grow with
    # it, and a Redis listing must not show user ids or subject references.
    long_case = "C" * 10_000
    checks = checks_for(
        RateLimits(),
        partner=PARTNER,
        acting_user="j.jansen@gemeente.example",
        case=long_case,
        subject="bewoner-42",
    )
    for check in checks:
        for text in (check.key, check.member or ""):
            assert "jansen" not in text and "bewoner" not in text and "CCC" not in text
            assert len(text) <= 100


def test_each_partner_and_user_has_keys_of_its_own() -> None:
    base = checks_for(RateLimits(), partner=PARTNER, acting_user="a", case="C", subject="S")
    other_user = checks_for(RateLimits(), partner=PARTNER, acting_user="b", case="C", subject="S")
    other_partner = checks_for(
        RateLimits(), partner="politie-lekstroom", acting_user="a", case="C", subject="S"
    )
    assert {c.key for c in base}.isdisjoint(c.key for c in other_partner)
    # Same partner, other user: only the partner-wide keys are shared.
    shared = {c.key for c in base} & {c.key for c in other_user}
    assert {c.limit_name for c in base if c.key in shared} == {
        "partner_requests_per_minute",
        "partner_distinct_pairs_per_hour",
        "partner_exchanges_per_day",
    }


@pytest.mark.parametrize(
    ("acting_user", "subject"),
    [
        ("j.jansen", None),  # half an exchange would skip the pair caps
        (None, "S-1"),  # and this one the per-user limits
        ("", "S-1"),  # an empty user would be one shared "user" for everyone
        ("j.jansen", ""),  # an empty subject is one shared pair for the case
    ],
)
def test_half_an_exchange_is_a_caller_bug(acting_user: str | None, subject: str | None) -> None:
    with pytest.raises(ValueError, match="expected"):
        checks_for(
            RateLimits(), partner=PARTNER, acting_user=acting_user, case="C-1", subject=subject
        )


@pytest.mark.parametrize(("partner", "case"), [("", "C-1"), (PARTNER, "")])
def test_missing_partner_or_case_is_a_caller_bug(partner: str, case: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        checks_for(RateLimits(), partner=partner, acting_user=None, case=case, subject=None)


@pytest.mark.parametrize(
    "override",
    [
        {"user_requests_per_minute": 0},  # a limit of nothing: not a way to switch off
        {"partner_exchanges_per_day": -1},  # arithmetic gone wrong
        {"partner_distinct_pairs_per_hour": MAX_LIMIT + 1},  # one key's memory is bounded
        {"requests_per_second": 5},  # a misspelt setting must not be silently ignored
    ],
)
def test_rate_limits_refuse_nonsense(override: dict[str, int]) -> None:
    with pytest.raises(pydantic.ValidationError):
        RateLimits.model_validate(override)


def test_rate_limits_are_frozen() -> None:
    limits = RateLimits()
    with pytest.raises(pydantic.ValidationError):
        limits.user_requests_per_minute = 10_000  # type: ignore[misc]
