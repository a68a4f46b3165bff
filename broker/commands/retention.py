"""`ketenbroker retention ...`: run the retention job and read what survives it (R7).

ketenbroker retention run [--now ISO]     destroy what is due, log it, print it
ketenbroker retention due [--horizon-days N] [--now ISO]
                                          destructions overdue or coming up
ketenbroker retention stats [--json]      the non-identifiable counts that remain

`--now` decides which destructions are due (a date means that day's noon
in the Netherlands; a datetime needs its zone). The audit entries carry it
as their time, so a run "in the future" is visible as such in the log.

The broker's services (databases, policy engine) are imported by the
handlers that build them, so other commands such as `keys init` stay light.
"""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime, time
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from broker.calendar_nl import local_date
from broker.cases.model import CaseStatus
from broker.retention.schedule import DEFAULT_HORIZON_DAYS, destructions_due
from broker.settings import Settings

if TYPE_CHECKING:
    from broker.services import Services

NOON = time(12, 0)
FINAL_STATES = frozenset({CaseStatus.geen_complexe_overlast, CaseStatus.afgesloten})


def parse_now(text: str) -> datetime:
    """A timezone-aware moment from `--now`: an ISO date (noon, Amsterdam) or datetime."""
    try:
        if len(text) == len("2026-05-04"):
            day = date.fromisoformat(text)
            return datetime.combine(day, NOON, tzinfo=ZoneInfo("Europe/Amsterdam"))
        moment = datetime.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected an ISO date or datetime, got {text!r}") from e
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"expected a datetime with its zone, got {text!r}")
    return moment


def _now(args: argparse.Namespace, services: Services) -> datetime:
    chosen: datetime | None = args.now
    return chosen if chosen is not None else services.clock.now()


def _services(settings: Settings) -> Services:
    from broker.services import build_services  # noqa: PLC0415  # see the module docstring

    return build_services(settings)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from broker.retention.job import run_retention  # noqa: PLC0415  # see the module docstring

    services = _services(settings)
    try:
        now = _now(args, services)
        report = run_retention(
            cases=services.cases, audit=services.audit, convenant=services.convenant, now=now
        )
    finally:
        services.close()
    for case_id in report.logged_late:
        print(f"logged an earlier destruction: {case_id}")
    for case_id in report.destroyed:
        print(f"destroyed personal data: {case_id}")
    print(
        f"retention {now.isoformat()}: checked {report.checked} ended cases,"
        f" destroyed {len(report.destroyed)}"
    )
    return 0


def _due(args: argparse.Namespace, settings: Settings) -> int:
    services = _services(settings)
    try:
        now = _now(args, services)
        due = destructions_due(
            services.cases.cases_in_states(FINAL_STATES),
            services.convenant,
            now=now,
            horizon_days=args.horizon_days,
        )
    finally:
        services.close()
    for item in due:
        print(f"{item.due.isoformat()}  {item.case.id}  {item.reason.value}")
    print(f"{len(due)} destructions due within {args.horizon_days} days of {local_date(now)}")
    return 0


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    services = _services(settings)
    try:
        rows = services.cases.statistics()
    finally:
        services.close()
    if args.json:
        print(json.dumps([row.to_dict() for row in rows], indent=2))
        return 0
    print(f"{'quarter':<9} {'outcome':<24} {'kind':<12} {'months':<7} cases")
    for row in rows:
        print(
            f"{row.quarter:<9} {row.outcome:<24} {row.kind:<12} {row.duration_months:<7}"
            f" {row.cases}"
        )
    return 0


def _horizon(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 3660:  # ten years: longer than any convenant's retention term
        raise argparse.ArgumentTypeError(f"expected 0 to 3660 days, got {value}")
    return value


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `retention` command group."""
    group = commands.add_parser("retention", help="destruction of personal data (R7)")
    sub = group.add_subparsers(dest="retention_command", required=True)

    run = sub.add_parser("run", help="destroy the personal data that is due and log it")
    run.add_argument("--now", type=parse_now, help="ISO date or datetime (default: the clock)")
    run.set_defaults(handler=_run)

    due = sub.add_parser("due", help="list destructions overdue or coming up")
    due.add_argument("--now", type=parse_now, help="ISO date or datetime (default: the clock)")
    due.add_argument("--horizon-days", type=_horizon, default=DEFAULT_HORIZON_DAYS)
    due.set_defaults(handler=_due)

    stats = sub.add_parser("stats", help="the non-identifiable statistics that remain")
    stats.add_argument("--json", action="store_true", help="as JSON")
    stats.set_defaults(handler=_stats)
