"""Servers of a bench run as OS processes of their own: start, wait until ready, always stop.

What it does: `ServerProcess` starts one command (our own interpreter and
module, no shell) in a new session, so the process and every child it
spawns (uvicorn's workers) form one process group, with stdout and stderr
in a log file. `wait_ready` polls one URL until it answers 200, and
optionally until a log line has appeared a number of times, both bounded
by one deadline; `stop` and `stop_all` send SIGTERM to the group(s), wait
one bounded time and then SIGKILL whatever is left of them.

What it does not: pick what to run or which environment (bench.scale_out),
or retry a process that exited: an exit before ready is an error with the
log's tail.

Why process groups: `serve --workers N` forks workers; stopping only the
parent could leave a worker holding the port and the scratch database,
and a bench run must leave nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from broker.settings import PROJECT_ROOT

POLL_SECONDS = 0.1
PROBE_TIMEOUT_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 10.0
LOG_TAIL_CHARS = 1_500


class ServerProcess:
    """One server command as a process group of its own, logging to `log_file`."""

    def __init__(self, *, name: str, args: list[str], env: dict[str, str], log_file: Path) -> None:
        self.name = name
        self.log_file = log_file
        with log_file.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603  # our own interpreter and module
                [sys.executable, *args],
                cwd=PROJECT_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(
        self, url: str, *, deadline: float, log_line: str | None = None, times: int = 1
    ) -> None:
        """Until `url` answers 200 (and `log_line` was logged `times` times), or raise."""
        ready = False
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited {self.process.returncode} before ready: {self.log_tail()}"
                )
            if not ready:
                with contextlib.suppress(httpx.TransportError):
                    ready = httpx.get(url, timeout=PROBE_TIMEOUT_SECONDS).status_code == 200
            if ready and (log_line is None or self.log_count(log_line) >= times):
                return
            time.sleep(POLL_SECONDS)
        raise RuntimeError(f"{self.name} not ready before its deadline: {self.log_tail()}")

    def log_count(self, line: str) -> int:
        try:
            return self.log_file.read_text(errors="replace").count(line)
        except OSError:
            return 0

    def log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError as e:
            return f"(no log: {e})"

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            # start_new_session: the group id is the leader's pid.
            os.killpg(self.process.pid, signal.SIGTERM)

    def kill(self) -> None:
        # Workers may outlive a leader that exited on SIGTERM: the group goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def stop(self) -> None:
        """SIGTERM to the group, a bounded wait, then SIGKILL to whatever is left."""
        stop_all([self])


def stop_all(processes: list[ServerProcess]) -> None:
    """SIGTERM to every group at once, one shared bounded wait, then SIGKILL to every group.

    One deadline for all: five servers wait STOP_TIMEOUT_SECONDS together,
    not five times that, before SIGKILL, which does not wait on the process.
    """
    for process in reversed(processes):
        process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for process in reversed(processes):
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.process.wait(timeout=max(deadline - time.monotonic(), 0.01))
    for process in reversed(processes):
        process.kill()
    processes.clear()
