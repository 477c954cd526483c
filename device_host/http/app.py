"""The aiohttp application: routes, request metrics and the host's lifecycle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from device_host.host import DeviceHost
from device_host.http.access import ACCESS_POLICY, AccessPolicy, load_or_create_token
from device_host.http.connections import CONNECTION_GUARD, ConnectionGuard
from device_host.http.dashboard import DashboardRoutes
from device_host.http.metrics import MetricsRoutes
from device_host.http.readings import ReadingRoutes
from device_host.http.security import on_response_prepare
from device_host.http.status import StatusRoutes

MAX_REQUEST_BYTES = 1 << 20
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def create_app(host: DeviceHost) -> web.Application:
    """The device's web app; the host starts on app start-up and stops on clean-up."""
    server = host.config.server
    token_file = server.access_token_file or host.config.state.dir / "access-token"
    access = AccessPolicy(load_or_create_token(token_file))
    guard = ConnectionGuard(server, host.metrics)
    app = web.Application(
        client_max_size=MAX_REQUEST_BYTES,
        middlewares=[_observe(host), access.middleware, guard.middleware],  # type: ignore[list-item]
    )
    app[ACCESS_POLICY] = access
    app[CONNECTION_GUARD] = guard
    app.on_response_prepare.append(on_response_prepare)
    StatusRoutes(host).add_to(app)
    MetricsRoutes(host).add_to(app)
    ReadingRoutes(host).add_to(app)
    DashboardRoutes(host).add_to(app)

    async def lifecycle(_app: web.Application):  # type: ignore[no-untyped-def]
        await asyncio.get_running_loop().run_in_executor(None, host.start)
        yield
        await asyncio.get_running_loop().run_in_executor(None, host.stop)

    app.cleanup_ctx.append(lifecycle)
    return app


def _observe(host: DeviceHost) -> Middleware:
    """Counts requests by route and status and times them."""

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
        return response

    return middleware
