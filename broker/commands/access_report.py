"""`ketenbroker access-report ...`: the AVG art. 15 report as a document.

ketenbroker access-report --case CASE --subject REF --out FILE.html [--force]

What it does: builds the broker's services from the settings (the same
store, case register and keys the running broker uses), gathers the report
exactly as `GET /v1/audit/subjects/{ref}?case=` does, writes it as the
self-contained Dutch HTML letter of `broker.audit.access_report`, and
prints the file's path.

What it does not: send the letter, or overwrite an existing file unless
told to (`--force`): the document holds personal data, so it is created
readable by its owner only (0600), and a typo must not clobber another.
It runs with the operator's access to the broker's data; who may run it is
decided by who may log in to the broker's host.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from broker.cases.requests import SUBJECT_REF
from broker.errors import NotFoundError
from broker.settings import Settings

# As the API edge accepts them (broker/api/routes/audit_subjects.py); not
# imported from there so that loading the CLI does not load FastAPI.
_CASE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SUBJECT_REF = re.compile(SUBJECT_REF)


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise argparse.ArgumentTypeError(f"expected a {what} matching {pattern.pattern}")
        return value

    check.__name__ = what  # argparse names the type in its error message
    return check


def _write_private(path: Path, text: str, *, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def _access_report(args: argparse.Namespace, settings: Settings) -> int:
    # The API stack is imported only by the command that needs it.
    from broker.api.routes.audit_subjects import gather_access_report  # noqa: PLC0415
    from broker.audit.access_report import render_access_report_html  # noqa: PLC0415
    from broker.services import build_services  # noqa: PLC0415

    out = Path(args.out)
    services = build_services(settings)
    try:
        report = gather_access_report(services, case_id=args.case, subject_ref=args.subject)
    except NotFoundError:
        print(
            f"case {args.case} is unknown, or its personal data no longer exists",
            file=sys.stderr,
        )
        return 1
    finally:
        services.close()
    try:
        _write_private(out, render_access_report_html(report), force=args.force)
    except FileExistsError:
        print(f"{out} exists; pass --force to overwrite it", file=sys.stderr)
        return 1
    print(out.resolve())
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `access-report` command."""
    command = commands.add_parser(
        "access-report",
        help="write a data subject's access report (AVG art. 15) as an HTML letter",
    )
    command.add_argument("--case", required=True, type=_matching(_CASE_ID, "case id"))
    command.add_argument(
        "--subject", required=True, type=_matching(_SUBJECT_REF, "subject ref"), metavar="REF"
    )
    command.add_argument("--out", required=True, metavar="FILE.html")
    command.add_argument("--force", action="store_true", help="overwrite FILE.html if it exists")
    command.set_defaults(handler=_access_report)
