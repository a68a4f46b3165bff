"""`ketenbroker retention ...` commands."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `retention` command group (filled in by its issue)."""
    _ = commands
