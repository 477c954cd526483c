"""Runs the HTTP app until SIGTERM or SIGINT, handing requests over cleanly on a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time

from aiohttp import web

SD_LISTEN_FDS_START = 3
BACKLOG = 128
DRAIN_S = 1.0
"""After it stops accepting, how long the server waits for open connections to finish: one
accepted just before may not have sent its request yet, and aiohttp would close it unserved.
Clients that close after each response (the usual case) end the wait within milliseconds."""


def serve(app: web.Application, host: str, port: int) -> None:
    """Serves ``app`` on systemd's socket if it passed one, else on ``host:port``."""
    asyncio.run(_serve(app, host, port))


async def _serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        listening = systemd_socket() or socket.create_server((host, port), backlog=BACKLOG)
        site = web.SockSite(runner, listening)
        await site.start()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await stopping.wait()
        # Stop accepting before closing: asyncio drops a connection it accepted but had not
        # yet attached when its server closes, and the client gets a reset.
        loop.remove_reader(listening.fileno())
        await asyncio.sleep(0.05)
        await site.stop()
        await _drain(runner)
    finally:
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
