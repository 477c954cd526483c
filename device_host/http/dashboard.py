"""Routes that serve plugin pages: ``/`` and ``/plugins/<name>/...``."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from device_host.errors import PluginTrap, PluginUnavailable
from device_host.host import DeviceHost
from device_host.http.pages import error_page
from device_host.plugins.slot import PluginSlot
from device_host.runtime import HttpRequest, HttpResponse, LoadedVersion
from device_host.runtime.exports import demo_render, handle_http
from device_host.runtime.instance import PluginInstance

MOUNT_HEADER = "x-forwarded-prefix"
"""Tells a plugin where it is mounted ("" at the root), so it can build absolute links."""
STARTUP_WAIT_S = 10.0
"""How long a request that arrives while the host starts waits for its plugin to load."""
DASHBOARD_WORLDS = frozenset({"dashboard", "demo:dashboard-plugin"})
_DROPPED_HEADERS = frozenset(
    {"connection", "content-length", "keep-alive", "set-cookie", "transfer-encoding", "upgrade"}
)


class NoFreshReading(Exception):
    """A demo dashboard renders the current reading, and there is none."""


class DashboardRoutes:
    def __init__(self, host: DeviceHost, executor: ThreadPoolExecutor) -> None:
        self._host = host
        self._executor = executor

    def add_to(self, app: web.Application) -> None:
        """Adds the plugin routes; add them last, as the root dashboard takes every other path."""
        app.router.add_route("*", "/plugins/{name}", self.plugin)
        app.router.add_route("*", "/plugins/{name}/{tail:.*}", self.plugin)
        app.router.add_route("*", "/{tail:.*}", self.root)

    async def root(self, request: web.Request) -> web.StreamResponse:
        name = self._host.config.plugins.dashboard
        return await self._serve(request, name, "/" + request.match_info["tail"], mount="")

    async def plugin(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        tail = request.match_info.get("tail", "")
        return await self._serve(request, name, "/" + tail, mount=f"/plugins/{name}")

    async def _loaded_slot(self, name: str) -> PluginSlot | None:
        """The plugin's slot; while the host starts, waits (bounded) for its first version.

        After a restart, requests queued on the socket meanwhile arrive first: they wait the
        half second plugins take to load from the compiled cache instead of getting a 503.
        """
        deadline = time.monotonic() + STARTUP_WAIT_S
        while True:
            slot = self._host.plugins.slot(name)
            loaded = slot is not None and slot.version is not None
            if loaded or self._host.ready or time.monotonic() >= deadline:
                return slot
            await asyncio.sleep(0.02)

    async def _serve(
        self, request: web.Request, name: str, path: str, mount: str
    ) -> web.StreamResponse:
        slot = await self._loaded_slot(name)
        version = slot.version if slot else None
        if slot is None and not self._host.ready:
            return error_page(503, "Starting", f"The device host is still loading {name}.")
        if slot is None:
            return error_page(404, "No such plugin", f"This device has no plugin named {name}.")
        if version is not None and version.manifest.world not in DASHBOARD_WORLDS:
            return error_page(404, "Not a dashboard", f"Plugin {name} has no pages.")
        plugin_request = HttpRequest(
            method=request.method,
            path=path,
            query=request.query_string,
            headers=[
                *((k.lower(), v) for k, v in request.headers.items()),
                (MOUNT_HEADER, mount),
            ],
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
        except NoFreshReading:
            return error_page(503, "No sensor reading", "The sensor has no current reading.")
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
        stale_after_s = self._host.config.sensor.stale_after_s
        latest = self._host.readings.current(stale_after_s, time.time())
        if latest is None:
            raise NoFreshReading
        html = demo_render(
            instance, version.entry_interface, latest.temperature_c, latest.humidity_pct
        )
        return HttpResponse(200, [("content-type", "text/html; charset=utf-8")], html.encode())
