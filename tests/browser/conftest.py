"""A real headless Chromium against a real broker on loopback, started and stopped by the tests.

The browser is Debian's `chromium` (/usr/bin/chromium), driven by Playwright
through `executable_path`: Playwright's own browser download is never used
(this machine's network would refuse it, and `make test` installs Debian's
package instead). The fixture skips only when /usr/bin/chromium is absent.

Chromium gets the flags this machine needs (no sandbox as root, no GPU, no
background networking: its calls home would be refused by the closed
network) and a fresh profile folder. After the browser closes, the fixture
checks that no process of that profile is left and fails the run if one is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from broker.keys import KeyStore
from broker.stack import LocalStack, start_local_stack

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1400, "height": 1000}
PROCESS_EXIT_SECONDS = 10.0


@pytest.fixture(scope="module")
def browser_stack(
    keystore: KeyStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """The broker and every adapter on the embedded default (SQLite, in-process cache)."""
    workdir = tmp_path_factory.mktemp("browser-stack")
    base = {
        "keys_dir": keystore.root,
        "policy_engine": "embedded",
        "storage_backend": "sqlite",
        "cache_backend": "memory",
        "sqlite_path": workdir / "ketenbroker.sqlite3",
    }
    with start_local_stack(base=base) as running:
        yield running


def _processes_using(profile: Path) -> list[int]:
    """The live processes whose command line names `profile` (zombies have none)."""
    marker = str(profile).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if marker in cmdline:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (make test installs it)")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415  # only when a browser exists

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport=VIEWPORT,
            locale="nl-NL",
            timezone_id="UTC",
        )
        try:
            yield context
        finally:
            context.close()
    deadline = time.monotonic() + PROCESS_EXIT_SECONDS
    while (left := _processes_using(profile)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        for pid in left:  # only the processes of this test's own profile
            os.kill(pid, 9)
        pytest.fail(f"Chromium processes {left} outlived the browser; killed them")
