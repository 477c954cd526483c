"""Runs the HTTP app until SIGTERM or SIGINT, handing requests over cleanly on a restart."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket
import time

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from device_host.http.connections import (
    CONNECTION_GUARD,
    HEALTH_RESERVE,
    OVERSHOOT,
    ConnectionGuard,
)
from device_host.logs import OncePerWindow

log = logging.getLogger(__name__)

SD_LISTEN_FDS_START = 3
BACKLOG = 128
FD_HEADROOM = 256
"""File descriptors besides connections: plugins' files, the log, the compiled cache."""
DRAIN_S = 1.0
"""After it stops accepting, how long the server waits for open connections to finish: one
accepted just before may not have sent its request yet, and aiohttp would close it unserved.
Clients that close after each response (the usual case) end the wait within milliseconds."""


def serve(app: web.Application, host: str, port: int) -> None:
    """Serves ``app`` on systemd's socket if it passed one, else on ``host:port``.

    The app's ``CONNECTION_GUARD`` (also one of its middlewares) admits and times out
    connections.
    """
    guard = app[CONNECTION_GUARD]
    guard.max_connections = fit_open_files(guard.max_connections)
    logging.getLogger("aiohttp.server").addFilter(_BadRequestFilter())
    asyncio.run(_serve(app, guard, host, port))


async def _serve(app: web.Application, guard: ConnectionGuard, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    assert runner.server is not None
    guard.attach(runner.server)
    try:
        listening = systemd_socket() or socket.create_server((host, port), backlog=BACKLOG)
        loop = asyncio.get_running_loop()
        accepting = await loop.create_server(guard, sock=listening, backlog=BACKLOG)
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await stopping.wait()
        # Stop accepting before closing: asyncio drops a connection it accepted but had not
        # yet attached when its server closes, and the client gets a reset.
        loop.remove_reader(listening.fileno())
        await asyncio.sleep(0.05)
        accepting.close()
        await _drain(runner)
    finally:
        guard.detach()
        await runner.cleanup()


async def _drain(runner: web.AppRunner) -> None:
    deadline = time.monotonic() + DRAIN_S
    while runner.server is not None and runner.server.connections:
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.02)


def systemd_socket() -> socket.socket | None:
    """The listening socket systemd passed (``device-host.socket``), if any.

    With socket activation the port stays open while the service restarts, so a request
    that arrives during an upgrade waits in the kernel's queue instead of being refused.
    """
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return socket.socket(fileno=SD_LISTEN_FDS_START)


def fit_open_files(max_connections: int) -> int:
    """Raises the open-files limit for ``max_connections``; lowers the cap if the hard limit
    is too low, so the host never runs into EMFILE ("Too many open files") on accept."""
    needed = OVERSHOOT * max_connections + HEALTH_RESERVE + FD_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft = raised
    if soft >= needed:
        return max_connections
    fitted: int = max(8, (soft - HEALTH_RESERVE - FD_HEADROOM) // OVERSHOOT)
    log.warning(
        "[server] max_connections %d lowered to %d: the open-files limit is %d",
        max_connections,
        fitted,
        soft,
    )
    return fitted


class _BadRequestFilter(logging.Filter):
    """aiohttp logs every malformed request it answers 400 with a traceback: one line instead,
    once a minute per kind of error, since anyone on the LAN can send them."""

    def __init__(self) -> None:
        super().__init__()
        self._conditions = OncePerWindow(log)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        self._conditions.hit(f"malformed requests answered {exc.code}: {type(exc).__name__}")
        return False
