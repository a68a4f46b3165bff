"""Confidentiality holds folded from log entries (broker.audit.holds, pure)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from broker.audit.entries import MAX_UNTRUSTED_CHARS, security_event
from broker.audit.holds import Hold, active_holds, hold_entry, hold_history, hold_lifted_entry
from tests.audit.conftest import T0, make_entry

POLICE = "politie"
GEMEENTE = "gemeente"


class Log:
    """A list of entries with indexes, as the store would number them."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def add(self, entry: dict[str, Any]) -> int:
        index = len(self.entries)
        self.entries.append({**entry, "index": index})
        return index

    def exchange(self, *, provider: str | None = POLICE) -> int:
        return self.add(make_entry(len(self.entries), provider=provider))

    def hold(self, target: int, *, by: str = POLICE, reason: str = "onderzoek 2026-17") -> int:
        moment = T0 + timedelta(minutes=len(self.entries))
        return self.add(hold_entry(time=moment, entry=target, set_by=by, reason=reason))

    def lift(self, target: int, *, by: str = POLICE) -> int:
        moment = T0 + timedelta(minutes=len(self.entries))
        return self.add(hold_lifted_entry(time=moment, entry=target, lifted_by=by))


def test_hold_by_the_provider_makes_the_entry_held() -> None:
    log = Log()
    target = log.exchange()
    log.exchange()
    log.hold(target, reason="lopend onderzoek")
    assert active_holds(log.entries) == {
        target: Hold(set_by=POLICE, reason="lopend onderzoek", time="2026-05-01T12:02:00.000000Z")
    }


def test_lifted_hold_is_no_longer_active() -> None:
    log = Log()
    target = log.exchange()
    log.hold(target)
    log.lift(target)
    assert active_holds(log.entries) == {}
    [period] = hold_history(log.entries)
    assert (period.active, period.lifted_by, period.lifted_log_index) == (False, POLICE, 2)


def test_entry_can_be_held_again_after_a_lift() -> None:
    log = Log()
    target = log.exchange()
    log.hold(target, reason="eerste")
    log.lift(target)
    log.hold(target, reason="tweede")
    assert active_holds(log.entries)[target].reason == "tweede"
    assert [(p.reason, p.active) for p in hold_history(log.entries)] == [
        ("eerste", False),
        ("tweede", True),
    ]


def test_second_hold_while_held_does_not_replace_the_first() -> None:
    # Two processes racing may both append a hold; the first one stands.
    log = Log()
    target = log.exchange()
    log.hold(target, reason="eerste")
    log.hold(target, reason="tweede")
    assert active_holds(log.entries)[target].reason == "eerste"
    assert len(hold_history(log.entries)) == 1
    log.lift(target)
    assert active_holds(log.entries) == {}


@pytest.mark.parametrize(
    "make_target",
    [
        # a refused token at the edge: not an exchange
        lambda log: log.add(
            security_event(
                time=T0,
                event="GET /x",
                code="invalid_token",
                principal=None,
                trace_id="0" * 32,
                detail="x",
            )
        ),
        # another marker: holds do not nest
        lambda log: log.hold(log.exchange()),
    ],
    ids=["security_event", "hold_marker"],
)
def test_hold_on_a_non_exchange_entry_is_ignored(make_target: Any) -> None:
    log = Log()
    target = make_target(log)
    before = active_holds(log.entries)
    log.hold(target)
    assert target not in active_holds(log.entries)
    assert active_holds(log.entries) == before


def test_hold_on_an_index_not_in_the_entries_is_ignored() -> None:
    log = Log()
    log.exchange()
    log.hold(99)
    assert active_holds(log.entries) == {}


def test_hold_by_anyone_but_the_provider_is_ignored() -> None:
    # The requester of the exchange may not hide it from the data subject.
    log = Log()
    target = log.exchange()
    log.hold(target, by=GEMEENTE)
    assert active_holds(log.entries) == {}


def test_hold_on_an_exchange_without_provider_is_ignored() -> None:
    log = Log()
    target = log.exchange(provider=None)
    log.hold(target, by=POLICE)
    assert active_holds(log.entries) == {}


def test_only_the_partner_that_set_the_hold_can_lift_it() -> None:
    log = Log()
    target = log.exchange()
    log.hold(target)
    log.lift(target, by=GEMEENTE)
    assert target in active_holds(log.entries)


def test_lift_without_a_hold_changes_nothing() -> None:
    # A lift before any hold must not cancel a hold set later.
    log = Log()
    target = log.exchange()
    log.lift(target)
    log.hold(target)
    assert target in active_holds(log.entries)


def test_hold_before_its_target_is_ignored() -> None:
    # Entries arrive in any order; only a hold that follows its target counts.
    log = Log()
    log.add(hold_entry(time=T0, entry=1, set_by=POLICE, reason="te vroeg"))
    log.exchange()
    assert active_holds(reversed(log.entries)) == {}


def test_fold_does_not_depend_on_the_order_entries_are_given() -> None:
    log = Log()
    target = log.exchange()
    log.hold(target)
    log.lift(target)
    log.hold(target, reason="opnieuw")
    assert active_holds(reversed(log.entries)) == active_holds(log.entries)


@pytest.mark.parametrize(
    "bad",
    [
        {"entry": True},  # a boolean is not an index
        {"entry": "0"},
        {"set_by": None},
        {"reason": None},
        {"time": None},
    ],
)
def test_malformed_hold_marker_is_ignored(bad: dict[str, Any]) -> None:
    log = Log()
    target = log.exchange()
    marker = hold_entry(time=T0, entry=target, set_by=POLICE, reason="x")
    log.add({**marker, **bad})
    assert active_holds(log.entries) == {}


def test_hold_reason_is_clipped_in_the_marker() -> None:
    marker = hold_entry(time=T0, entry=0, set_by=POLICE, reason="x" * 10_000)
    assert len(marker["reason"]) <= MAX_UNTRUSTED_CHARS + len("…[clipped]")
    assert marker["decision"] == "hold"
    assert hold_lifted_entry(time=T0, entry=0, lifted_by=POLICE)["decision"] == "hold_lifted"


def test_history_names_case_and_who_set_the_hold() -> None:
    log = Log()
    target = log.exchange()
    hold_index = log.hold(target, reason="OM-zaak")
    [period] = hold_history(log.entries)
    assert period.to_dict() == {
        "entry": target,
        "case": "case-1",
        "active": True,
        "set_by": POLICE,
        "reason": "OM-zaak",
        "set_at": "2026-05-01T12:01:00.000000Z",
        "set_log_index": hold_index,
        "lifted_by": None,
        "lifted_at": None,
        "lifted_log_index": None,
    }
