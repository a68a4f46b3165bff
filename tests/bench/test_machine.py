"""Machine information: what makes two runs comparable, and None where nothing answers."""

from __future__ import annotations

import os
import re

from bench.machine import machine_info, postgres_info
from broker.stack import free_port


def test_machine_info_names_cpus_python_and_commit() -> None:
    info = machine_info(postgres_admin_dsn=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    assert info["cpus"] == os.cpu_count()
    assert re.fullmatch(r"3\.\d+\.\d+", info["python"])
    # This tree is a git checkout: the commit is a full hash.
    assert re.fullmatch(r"[0-9a-f]{40}", info["git"]["commit"])
    assert info["git"]["dirty"] in {True, False}
    assert info["postgres"] is None  # nobody listens on that port: no guess


def test_postgres_settings_are_read_from_the_server(postgres_server_dsn: str) -> None:
    info = postgres_info(postgres_server_dsn)
    assert info is not None
    assert set(info) == {"server_version", "fsync", "synchronous_commit", "wal_sync_method"}
    assert info["server_version"]
