"""What machine and code a bench run measured: the part of the JSON that makes runs comparable.

What it does: `machine_info` gathers the CPU count, Python and SQLite
versions, the platform, the git commit (and whether the tree had
uncommitted changes), the load average when the run starts (other work
on the machine, which every figure shares the CPUs with), and, when the
PostgreSQL server answers, its version and the settings that decide what
a durable commit costs (fsync, synchronous_commit, wal_sync_method).

What it does not: fail. A figure that cannot be read is None, never a
guess; a bench run on a machine without git or PostgreSQL still reports.

Why: ratios from one run are comparable with another run only on the same
machine and commit; the JSON must say which, or a later "regression" is
only a different box.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sqlite3
import subprocess
import sys
from typing import Any

import psycopg

from broker.settings import PROJECT_ROOT

GIT_TIMEOUT_SECONDS = 5.0
PG_CONNECT_TIMEOUT_SECONDS = 3


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(  # noqa: S603  # fixed git arguments, no shell
            ["git", *args],  # noqa: S607  # git from PATH, as a developer runs it
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info() -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def postgres_info(admin_dsn: str) -> dict[str, Any] | None:
    """Version and durability settings of the server behind `admin_dsn`, or None."""
    with (
        contextlib.suppress(psycopg.Error),
        psycopg.connect(admin_dsn, connect_timeout=PG_CONNECT_TIMEOUT_SECONDS) as conn,
    ):
        info: dict[str, Any] = {}
        for name in ("server_version", "fsync", "synchronous_commit", "wal_sync_method"):
            row = conn.execute(f"SHOW {name}").fetchone()  # names above, not input
            info[name] = row[0] if row else None
        return info
    return None


def machine_info(*, postgres_admin_dsn: str) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "postgres": postgres_info(postgres_admin_dsn),
        "git": git_info(),
        # Other work on the box skews every figure; a later reader must see it.
        "loadavg_at_start": load_average(),
    }


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
