"""The aiohttp application: routes, request metrics and the host's lifecycle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from device_host.host import DeviceHost
from device_host.http.agent import AgentRoutes
from device_host.http.dashboard import DashboardRoutes
from device_host.http.status import StatusRoutes

MAX_REQUEST_BYTES = 1 << 20
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def create_app(host: DeviceHost) -> web.Application:
    """The device's web app; the host starts on app start-up and stops on clean-up."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[_observe(host)])  # type: ignore[list-item]
    executor = ThreadPoolExecutor(
        max_workers=host.config.plugins.pool_size * 2, thread_name_prefix="plugin-call"
    )
    StatusRoutes(host).add_to(app)
    if host.agent is not None:
        AgentRoutes(host.agent).add_to(app)
    DashboardRoutes(host, executor).add_to(app)

    async def lifecycle(_app: web.Application):  # type: ignore[no-untyped-def]
        await asyncio.get_running_loop().run_in_executor(None, host.start)
        yield
        executor.shutdown(wait=True, cancel_futures=True)
        await asyncio.get_running_loop().run_in_executor(None, host.stop)

    app.cleanup_ctx.append(lifecycle)
    return app


def _observe(host: DeviceHost) -> Middleware:
    """Counts requests by route and status, times them, and sets headers every reply needs."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        status = 500
        try:
            response = await handler(request)
            status = response.status
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            host.metrics.inc("http_requests_total", route=name, status=str(status))
            host.metrics.observe("http_request_seconds", time.monotonic() - started, route=name)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return middleware
