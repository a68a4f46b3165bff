"""Run an ASGI app with uvicorn in a background thread, on a socket bound here.

What it does: `start_server(app)` binds the listening socket itself (so
`port=0` picks a free port and the URL is known before the first request),
starts uvicorn on it in a thread, waits until uvicorn serves, and returns a
`RunningServer` with `.url` and `.stop()`. `stop()` asks uvicorn to shut
down and joins the thread, so no thread or socket outlives it. Use it as a
context manager to make that automatic.

What it does not: install signal handlers (uvicorn skips them off the main
thread), configure logging (`log_config=None`: the host process owns
logging), or speak TLS. It is for demos, tests and local partner stubs on
loopback; production adapters run under their own process manager.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

STARTUP_TIMEOUT_SECONDS = 10.0
# uvicorn's shutdown waits for open connections; keep-alive clients must not
# hold a test run hostage.
GRACEFUL_SHUTDOWN_SECONDS = 2
STOP_TIMEOUT_SECONDS = 10.0
_POLL_SECONDS = 0.01


class ServerStartError(RuntimeError):
    """uvicorn did not come up: startup failed or timed out."""


class RunningServer:
    """A uvicorn server serving in a background thread; see `start_server`."""

    def __init__(
        self, *, server: uvicorn.Server, thread: threading.Thread, sock: socket.socket, url: str
    ) -> None:
        self._server = server
        self._thread = thread
        self._socket = sock
        self.url = url

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, *, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Shut uvicorn down and join its thread; raise if the thread will not end."""
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            # Graceful shutdown is stuck on a connection; cut it short.
            self._server.force_exit = True
            self._thread.join(timeout)
        self._socket.close()
        if self._thread.is_alive():
            raise RuntimeError(f"uvicorn thread for {self.url} did not stop within {timeout}s")

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio enables TCP_NODELAY on accepted
    # connections only when the socket says it is TCP. With proto 0 every
    # response waited ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def start_server(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
) -> RunningServer:
    """Serve `app` on host:port (0 = a free port) until `.stop()`; returns once it serves."""
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        http="h11",
        ws="none",
        lifespan="auto",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = uvicorn.Server(config)
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as e:  # noqa: BLE001  # includes uvicorn's SystemExit on startup failure; reported by start_server
            failure.append(e)

    thread = threading.Thread(target=serve, name=f"uvicorn-{host}:{bound_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(STOP_TIMEOUT_SECONDS)
            sock.close()
            reason = repr(failure[0]) if failure else "timed out"
            raise ServerStartError(f"expected uvicorn to serve on {host}:{bound_port}: {reason}")
        time.sleep(_POLL_SECONDS)
    url_host = f"[{host}]" if ":" in host else host
    return RunningServer(
        server=server, thread=thread, sock=sock, url=f"http://{url_host}:{bound_port}"
    )
