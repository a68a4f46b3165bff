"""Confidentiality holds on exchange entries, as entries of the log itself (pure).

What it does: builds the two marker entries (`hold_entry`, `hold_lifted_entry`)
and folds a run of log entries into the holds they establish
(`hold_history`, `active_holds`). A provider puts a hold on an exchange
entry it answered, e.g. the police while an investigation runs; while the
hold is active the entry stays out of data-subject access reports
(`broker.audit.access_report`). The DPO sees every hold and who set it.

What it does not: read or write the log, or check who the caller is; the
API edge (`broker.api.routes.audit_subjects`) does that. The fold does
re-check authority, though: a marker counts only if its target is an
exchange entry given to the fold, earlier in the log, and the marker's
author is that entry's provider (for a lift: the partner who set the hold).
A marker the edge should never have written changes nothing.

Why markers instead of a flag: the log is append-only and hashed into the
Merkle tree; changing an entry would break every checkpoint. A hold is a
fact about an entry, so it is recorded as a later entry, and the history of
holds (set, lifted, set again) is itself tamper-evident.

The fold walks the entries in index order:

* `kind: exchange`: remembered as a possible target (its provider).
* `kind: hold`: the target becomes held, unless it is unknown, not an
  exchange, not answered by `set_by`, or already held (the first hold
  stands; a concurrent second one is a no-op).
* `kind: hold_lifted`: the target's hold ends, if it is held and
  `lifted_by` set it. A target may be held again later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from broker.audit.entries import clip
from broker.clock import rfc3339

HOLD = "hold"
HOLD_LIFTED = "hold_lifted"


def hold_entry(*, time: datetime, entry: int, set_by: str, reason: str) -> dict[str, Any]:
    """The marker that puts a hold on exchange entry `entry`; `reason` is clipped."""
    return {
        "kind": HOLD,
        "time": rfc3339(time),
        "entry": entry,
        "set_by": set_by,
        "reason": clip(reason),
        # The store indexes `decision`: markers are found without a full scan.
        "decision": HOLD,
    }


def hold_lifted_entry(*, time: datetime, entry: int, lifted_by: str) -> dict[str, Any]:
    """The marker that lifts the hold on exchange entry `entry`."""
    return {
        "kind": HOLD_LIFTED,
        "time": rfc3339(time),
        "entry": entry,
        "lifted_by": lifted_by,
        "decision": HOLD_LIFTED,
    }


@dataclass(frozen=True)
class Hold:
    """An active hold: who set it, why, and when (the marker's time)."""

    set_by: str
    reason: str
    time: str


@dataclass(frozen=True)
class HoldPeriod:
    """One hold from setting to lifting (or still active), as the DPO sees it."""

    entry: int
    case: str | None
    set_by: str
    reason: str
    set_at: str
    set_log_index: int
    lifted_by: str | None = None
    lifted_at: str | None = None
    lifted_log_index: int | None = None

    @property
    def active(self) -> bool:
        return self.lifted_log_index is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry": self.entry,
            "case": self.case,
            "active": self.active,
            "set_by": self.set_by,
            "reason": self.reason,
            "set_at": self.set_at,
            "set_log_index": self.set_log_index,
            "lifted_by": self.lifted_by,
            "lifted_at": self.lifted_at,
            "lifted_log_index": self.lifted_log_index,
        }


@dataclass(frozen=True)
class _Target:
    provider: str | None
    case: str | None


def _int(value: object) -> int | None:
    # bool is an int in Python; `true` is not an index.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _provider(entry: Mapping[str, Any]) -> str | None:
    provider = entry.get("provider")
    return _str(provider.get("partner")) if isinstance(provider, Mapping) else None


def _indexed(entries: Iterable[Mapping[str, Any]]) -> list[tuple[int, Mapping[str, Any]]]:
    """The entries with an integer `index`, in index order, each index once."""
    by_index: dict[int, Mapping[str, Any]] = {}
    for entry in entries:
        index = _int(entry.get("index"))
        # An entry without its index cannot be placed in the log: ignore it.
        if index is not None:
            by_index.setdefault(index, entry)
    return sorted(by_index.items())


def hold_history(entries: Iterable[Mapping[str, Any]]) -> list[HoldPeriod]:
    """Every hold the entries establish, active or lifted, in the order they were set.

    `entries` are stored entries (with `"index"`), in any order; a hold
    counts only if its target exchange entry is among them (see the module
    docstring for the rules).
    """
    targets: dict[int, _Target] = {}
    periods: list[HoldPeriod] = []
    open_period: dict[int, int] = {}  # target index -> position in `periods`
    for index, entry in _indexed(entries):
        kind = entry.get("kind")
        if kind == "exchange":
            targets[index] = _Target(provider=_provider(entry), case=_str(entry.get("case")))
            continue
        target = _int(entry.get("entry"))
        time = _str(entry.get("time"))
        if target is None or time is None or target not in targets:
            continue
        if kind == HOLD:
            set_by, reason = _str(entry.get("set_by")), _str(entry.get("reason"))
            provider = targets[target].provider
            if (
                set_by is None
                or reason is None
                or provider is None
                or set_by != provider
                or target in open_period
            ):
                continue
            open_period[target] = len(periods)
            periods.append(
                HoldPeriod(
                    entry=target,
                    case=targets[target].case,
                    set_by=set_by,
                    reason=reason,
                    set_at=time,
                    set_log_index=index,
                )
            )
        elif kind == HOLD_LIFTED:
            lifted_by = _str(entry.get("lifted_by"))
            position = open_period.get(target)
            if position is None or lifted_by is None or lifted_by != periods[position].set_by:
                continue
            periods[position] = replace(
                periods[position], lifted_by=lifted_by, lifted_at=time, lifted_log_index=index
            )
            del open_period[target]
    return periods


def active_holds(entries: Iterable[Mapping[str, Any]]) -> dict[int, Hold]:
    """The exchange entries under an active hold: target index -> the hold."""
    return {
        period.entry: Hold(set_by=period.set_by, reason=period.reason, time=period.set_at)
        for period in hold_history(entries)
        if period.active
    }
