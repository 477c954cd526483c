"""Routes that serve plugin pages: ``/`` and ``/plugins/<name>/...``."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from device_host.errors import NoSensorReading, PluginTrap, PluginUnavailable
from device_host.host import DeviceHost
from device_host.http.pages import error_page
from device_host.http.security import (
    Page,
    forwarded_request_headers,
    page_grants,
    plugin_response,
)
from device_host.plugins.slot import PluginSlot
from device_host.runtime import HttpRequest, HttpResponse, LoadedVersion, Reading

MOUNT_HEADER = "x-forwarded-prefix"
"""Tells a plugin where it is mounted ("" at the root), so it can build absolute links."""
STARTUP_WAIT_S = 10.0
"""How long a request that arrives while the host starts waits for its plugin to load."""


RETRY_SAFE_METHODS = frozenset({"GET", "HEAD"})
"""Requests a plugin version in probation may hand to its predecessor if it traps."""


def _failed_page(reply: HttpResponse) -> bool:
    """A 5xx, or a status the host will not send (it answers 502 instead), is a failure."""
    return not 200 <= reply.status < 500


class DashboardRoutes:
    def __init__(self, host: DeviceHost) -> None:
        self._host = host

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
        if version is not None and not version.world.serves_pages:
            return error_page(404, "Not a dashboard", f"Plugin {name} has no pages.")
        plugin_request = HttpRequest(
            method=request.method,
            path=path,
            query=request.query_string,
            headers=forwarded_request_headers(request.headers.items(), MOUNT_HEADER, mount),
            body=await request.read(),
        )

        def work(version: LoadedVersion) -> HttpResponse:
            return version.respond(plugin_request, self._demo_reading)

        try:
            submitted = slot.submit(
                work, retry_safe=request.method in RETRY_SAFE_METHODS, failed=_failed_page
            )
            reply = await asyncio.wrap_future(submitted)
        except PluginUnavailable as exc:
            return error_page(503, "Plugin unavailable", str(exc))
        except PluginTrap as trap:
            return error_page(500, f"Plugin {name} was stopped", f"{trap.kind}: {trap.detail}")
        except NoSensorReading:
            return error_page(503, "No sensor reading", "The sensor has no current reading.")
        page = Page(name, mount, page_grants(mount, version.world if version else None))
        return plugin_response(
            request, page, (reply.status, reply.headers, reply.body), self._host.metrics
        )

    def _demo_reading(self) -> Reading | None:
        """What the original demo's dashboards render: the freshest reading there is."""
        latest = self._host.readings.demo_reading(
            self._host.config.sensor.stale_after_s, time.time()
        )
        return None if latest is None else (latest.temperature_c, latest.humidity_pct)
