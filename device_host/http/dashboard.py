"""Routes that serve plugin pages: ``/`` and ``/plugins/<name>/...``."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from device_host.errors import PluginTrap, PluginUnavailable
from device_host.host import DeviceHost
from device_host.http.pages import error_page
from device_host.runtime import HttpRequest, HttpResponse, LoadedVersion
from device_host.runtime.exports import demo_render, handle_http
from device_host.runtime.instance import PluginInstance

DASHBOARD_WORLDS = frozenset({"dashboard", "demo:dashboard-plugin"})
_DROPPED_HEADERS = frozenset(
    {"connection", "content-length", "keep-alive", "set-cookie", "transfer-encoding", "upgrade"}
)


class NoReadingYet(Exception):
    """A demo dashboard renders the latest reading, and there is none yet."""


class DashboardRoutes:
    def __init__(self, host: DeviceHost, executor: ThreadPoolExecutor) -> None:
        self._host = host
        self._executor = executor

    def add_to(self, app: web.Application) -> None:
        app.router.add_route("*", "/", self.root)
        app.router.add_route("*", "/plugins/{name}", self.plugin)
        app.router.add_route("*", "/plugins/{name}/{tail:.*}", self.plugin)

    async def root(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._host.config.plugins.dashboard, "/")

    async def plugin(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info.get("tail", "")
        return await self._serve(request, request.match_info["name"], "/" + tail)

    async def _serve(self, request: web.Request, name: str, path: str) -> web.StreamResponse:
        slot = self._host.plugins.slot(name)
        version = slot.version if slot else None
        if slot is None:
            return error_page(404, "No such plugin", f"This device has no plugin named {name}.")
        if version is not None and version.manifest.world not in DASHBOARD_WORLDS:
            return error_page(404, "Not a dashboard", f"Plugin {name} has no pages.")
        plugin_request = HttpRequest(
            method=request.method,
            path=path,
            query=request.query_string,
            headers=[(k.lower(), v) for k, v in request.headers.items()],
            body=await request.read(),
        )

        def work(version: LoadedVersion, instance: PluginInstance) -> HttpResponse:
            return self._call(version, instance, plugin_request)

        loop = asyncio.get_running_loop()
        try:
            reply = await loop.run_in_executor(self._executor, slot.call, work)
        except PluginUnavailable as exc:
            return error_page(503, "Plugin unavailable", str(exc))
        except PluginTrap as trap:
            return error_page(500, f"Plugin {name} was stopped", f"{trap.kind}: {trap.detail}")
        except NoReadingYet:
            return error_page(503, "Waiting for the sensor", "No sensor reading has arrived yet.")
        response = web.Response(status=reply.status, body=reply.body)
        for key, value in reply.headers:
            if key.lower() not in _DROPPED_HEADERS:
                response.headers[key] = value
        return response

    def _call(
        self, version: LoadedVersion, instance: PluginInstance, request: HttpRequest
    ) -> HttpResponse:
        if version.manifest.world == "dashboard":
            return handle_http(instance, version.entry_interface, request)
        latest = self._host.readings.latest()
        if latest is None:
            raise NoReadingYet
        html = demo_render(
            instance, version.entry_interface, latest.temperature_c, latest.humidity_pct
        )
        return HttpResponse(200, [("content-type", "text/html; charset=utf-8")], html.encode())
