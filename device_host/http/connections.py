"""Holds :3000 against slow and numerous clients (slowloris): bounded connections and read times.

aiohttp bounds line and header sizes and closes idle keep-alive connections, but it accepts
every connection and waits for request headers as long as the keep-alive timeout. The guard
sits between the listening socket and aiohttp's protocol factory: it counts connections, gives
each ``header_timeout_s`` to send its first request, and at ``max_connections`` closes the
oldest connection that holds no request to make room for the new one. When every
connection is busy, a few reserve connections still answer ``/healthz``; past those, a new
connection gets an immediate 503.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from device_host.config import ServerConfig
from device_host.logs import OncePerWindow
from device_host.metrics import Metrics

log = logging.getLogger(__name__)

HEALTH_RESERVE = 8
"""Connections past the cap, for ``/healthz`` only, when none can be closed for a new one."""
HEALTH_PATH = "/healthz"
MAX_LINE_BYTES = 8190
MAX_HEADERS = 64
SWEEP_S = 0.5
CONNECT_GRACE_S = 1.0
"""A protocol the loop created but has not connected yet counts as open for this long."""
EVICT_AFTER_S = 0.25
OVERSHOOT = 16
"""Open connections stay under this many times the cap, young ones included."""
REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 29\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\nthe device has too many clients"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class _Connection:
    opened: float
    busy: int = 0
    answered: bool = False
    reserve: bool = False


class _Refused(asyncio.Protocol):
    """Answers 503 and closes, without reading the request."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(REFUSED)
        transport.close()


class _Handler(RequestHandler):
    """aiohttp's handler, noting when a complete header block has arrived: such a connection
    holds a request about to be answered and is never closed to make room."""

    __slots__ = ("_tail", "request_arrived")

    def __init__(self, manager: web.Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.request_arrived = False
        self._tail = b""

    def data_received(self, data: bytes) -> None:
        if not self.request_arrived:
            window = self._tail + data
            self.request_arrived = b"\r\n\r\n" in window or b"\n\n" in window
            self._tail = window[-3:]
        super().data_received(data)

    def request_done(self) -> None:
        self.request_arrived = False
        self._tail = b""


class ConnectionGuard:
    """The protocol factory for the listening socket, in front of aiohttp's ``web.Server``."""

    settings: ServerConfig

    def __init__(self, settings: ServerConfig, metrics: Metrics) -> None:
        self.settings = settings
        self.max_connections = settings.max_connections
        self._header_timeout_s = settings.header_timeout_s
        self._body_timeout_s = settings.body_timeout_s
        self._metrics = metrics
        self._server: web.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open: dict[_Handler, _Connection] = {}
        self._conditions = OncePerWindow(log)
        self._sweeper: asyncio.Task[None] | None = None

    def attach(self, server: web.Server) -> None:
        """Starts guarding ``server``'s connections; call from the running loop."""
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._sweeper = self._loop.create_task(self._sweep_forever())
        self._loop.set_exception_handler(self._loop_exception)

    def detach(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()

    def __call__(self) -> asyncio.BaseProtocol:
        assert self._server is not None and self._loop is not None
        live = self._live()
        busy = sum(1 for state in self._open.values() if state.busy)
        if busy >= self.max_connections + HEALTH_RESERVE:
            self._close("refused", "every connection is busy: refusing new ones with 503")
            return _Refused()
        if len(live) >= self.max_connections:
            self._evict_idle(live, len(live) - self.max_connections + 1)
        handler = _Handler(
            self._server,
            loop=self._loop,
            access_log=None,
            keepalive_timeout=self.settings.keepalive_s,
            max_line_size=MAX_LINE_BYTES,
            max_field_size=MAX_LINE_BYTES,
            max_headers=MAX_HEADERS,
        )
        reserve = busy >= self.max_connections
        self._open[handler] = _Connection(opened=time.monotonic(), reserve=reserve)
        return handler

    def _live(self) -> list[_Handler]:
        """Open connections, oldest first; forgets those that closed."""
        now = time.monotonic()
        closed = [
            handler
            for handler, state in self._open.items()
            if handler.transport is None and now - state.opened > CONNECT_GRACE_S
        ]
        for handler in closed:
            del self._open[handler]
        return list(self._open)

    def _evict_idle(self, live: list[_Handler], count: int) -> None:
        """Closes up to ``count`` of the oldest connections that hold no request.

        A connection younger than ``EVICT_AFTER_S`` is spared too while the total stays under
        ``OVERSHOOT`` times the cap: a client that just connected has likely sent its request,
        which the loop has not read yet when a flood keeps it busy accepting. One the loop
        accepted but has not connected yet cannot be closed; a later accept closes it if it
        is still idle by then.
        """
        spare_before = time.monotonic() - EVICT_AFTER_S
        if len(live) >= OVERSHOOT * self.max_connections:
            spare_before = float("inf")
        for handler in live:
            if count <= 0:
                return
            state = self._open[handler]
            holds_request = state.busy or handler.request_arrived
            if not holds_request and handler.transport and state.opened < spare_before:
                handler.force_close()
                del self._open[handler]
                count -= 1
                self._close("evicted", f"{self.max_connections} connections open: closing idle")

    def _close(self, reason: str, condition: str) -> None:
        self._metrics.inc("http_connections_closed_total", reason=reason)
        self._conditions.hit(condition)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            deadline = time.monotonic() - self._header_timeout_s
            for handler in self._live():
                state = self._open[handler]
                if not state.answered and state.opened < deadline and handler.transport:
                    handler.force_close()
                    self._close(
                        "header-timeout",
                        f"closed connections that sent no request in {self._header_timeout_s} s",
                    )

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio retries a failing accept every second; log that once per condition."""
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in {errno.EMFILE, errno.ENFILE}:
            self._conditions.hit(f"accept failing: {os.strerror(exc.errno).lower()}")
            self._evict_idle(self._live(), max(1, self.max_connections // 8))
            return
        loop.default_exception_handler(context)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Marks the connection busy while it is answered; bounds the time to read the body."""
        protocol = request.protocol
        if not isinstance(protocol, _Handler) or protocol not in self._open:
            return await handler(request)
        state = self._open[protocol]
        if state.reserve and request.path != HEALTH_PATH:
            raise web.HTTPServiceUnavailable(
                text="the device has too many clients; only /healthz answers now",
                headers={"Retry-After": "1", "Connection": "close"},
            )
        state.answered = True
        state.busy += 1
        try:
            if request.body_exists:
                try:
                    async with asyncio.timeout(self._body_timeout_s):
                        await request.read()
                except TimeoutError:
                    self._close("body-timeout", "closed requests whose body was too slow")
                    raise web.HTTPRequestTimeout(
                        text=f"the request body took longer than {self._body_timeout_s} s",
                        headers={"Connection": "close"},
                    ) from None
            return await handler(request)
        finally:
            state.busy -= 1
            protocol.request_done()


CONNECTION_GUARD = web.AppKey("connection_guard", ConnectionGuard)
