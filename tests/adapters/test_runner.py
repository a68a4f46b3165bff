"""The background uvicorn runner: it serves, and stopping leaves nothing behind."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from adapters.runner import ServerStartError, start_server


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    return app


def _port_is_closed(url: str) -> bool:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    with socket.socket() as probe:
        return probe.connect_ex((parts.hostname, parts.port)) != 0


ANYIO_WORKER = "AnyIO worker thread"
SETTLE_SECONDS = 5.0  # AnyIO's idle workers of an ended event loop exit within this


def _threads() -> set[int]:
    """Live threads, once the AnyIO workers of earlier (stopped) servers have ended.

    A stopped uvicorn loop's AnyIO worker threads finish shortly after the
    loop; counting them mid-exit made this test flaky (about 3 runs in 10).
    """
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline and any(
        t.name == ANYIO_WORKER for t in threading.enumerate()
    ):
        time.sleep(0.02)
    return {t.ident for t in threading.enumerate() if t.ident is not None}


def test_start_and_stop_leave_no_thread_or_socket_behind() -> None:
    before = _threads()
    server = start_server(_app())
    assert httpx.get(server.url + "/ping", timeout=5).json() == {"pong": "yes"}
    assert _threads() - before  # the server thread exists while serving
    server.stop()
    assert _threads() == before
    assert not server.running
    assert _port_is_closed(server.url)


def test_context_manager_stops_the_server() -> None:
    before = _threads()
    with start_server(_app()) as server:
        assert httpx.get(server.url + "/ping", timeout=5).status_code == 200
    assert _threads() == before
    assert _port_is_closed(server.url)


def test_port_zero_gives_each_server_its_own_free_port() -> None:
    with start_server(_app()) as first, start_server(_app()) as second:
        assert first.url != second.url
        assert first.url.startswith("http://127.0.0.1:")


def test_stop_does_not_hang_on_an_open_keep_alive_connection() -> None:
    before = _threads()
    with httpx.Client(timeout=5) as keep_alive:
        server = start_server(_app())
        assert keep_alive.get(server.url + "/ping").status_code == 200
        server.stop()
    assert _threads() == before


async def _fails_to_start(scope: Scope, receive: Receive, send: Send) -> None:
    """An ASGI app whose lifespan startup fails (ASGI lifespan spec)."""
    assert scope["type"] == "lifespan"
    await receive()  # lifespan.startup
    await send({"type": "lifespan.startup.failed", "message": "on purpose"})


def test_failed_startup_is_reported_and_leaves_no_thread() -> None:
    before = _threads()
    with pytest.raises(ServerStartError):
        start_server(_fails_to_start)
    assert _threads() == before


def test_listening_socket_is_tcp_so_responses_are_not_delayed() -> None:
    # asyncio sets TCP_NODELAY on accepted connections only for sockets whose
    # proto is IPPROTO_TCP; with proto 0 each response waited ~40 ms for the
    # peer's delayed ACK (found by the exchange benchmark, now bench/exchange.py).
    with start_server(_app()) as server:
        assert server._socket.proto == socket.IPPROTO_TCP
