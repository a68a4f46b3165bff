"""`ketenbroker access-report ...`: the AVG art. 15 report as a document."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `access-report` command (filled in by the DPO tools issue)."""
    _ = commands
