"""`ketenbroker serve --workers N` starts several processes only where they share all state.

With an in-process replay cache or a SQLite log, each worker would keep its
own: a DPoP proof or client assertion accepted by one worker could be
replayed to the next (RFC 9449 §11.1, RFC 7523 §3). These refusals happen
before anything is started, so no server runs here; the workers themselves
are exercised by tests/scale/test_two_brokers.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.cli import build_parser
from broker.settings import Settings


def _serve(argv: list[str], settings: Settings) -> int:
    args = build_parser().parse_args(["serve", *argv])
    code: int = args.handler(args, settings)
    return code


@pytest.mark.parametrize(
    ("backends", "refused_for"),
    [
        # The embedded default: SQLite and an in-process cache.
        ({"profile": "embedded"}, ("storage_backend=sqlite", "cache_backend=memory")),
        # A shared log is not enough when each worker has its own replay cache.
        ({"storage_backend": "postgres", "cache_backend": "memory"}, ("cache_backend=memory",)),
        # A shared cache is not enough when each worker has its own log file.
        ({"storage_backend": "sqlite", "cache_backend": "redis"}, ("storage_backend=sqlite",)),
    ],
    ids=["embedded", "memory-cache", "sqlite-log"],
)
def test_several_workers_without_shared_state_are_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    backends: dict[str, str],
    refused_for: tuple[str, ...],
) -> None:
    settings = Settings(sqlite_path=tmp_path / "log.sqlite3", **backends)
    assert _serve(["--no-adapters", "--workers", "2"], settings) == 2
    message = capsys.readouterr().err
    assert "--workers 2 refused" in message
    for reason in refused_for:
        assert reason in message
    assert not list(tmp_path.iterdir()), "nothing may be opened before the refusal"


@pytest.mark.parametrize(
    "argv",
    [
        ["--workers", "2"],  # the adapters run in-process: one process only
        ["--no-adapters", "--workers", "0"],
        ["--no-adapters", "--workers", "-1"],
    ],
    ids=["with-adapters", "zero", "negative"],
)
def test_meaningless_worker_counts_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    settings = Settings(
        profile="production",
        sqlite_path=tmp_path / "log.sqlite3",
        postgres_dsn="postgresql://x@0/x",
    )
    assert _serve(argv, settings) == 2
    assert "--workers" in capsys.readouterr().err
