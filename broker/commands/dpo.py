"""`ketenbroker dpo ...`: the DPO's command-line helpers (filled in by the dashboard work)."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `dpo` command group."""
    _ = commands
