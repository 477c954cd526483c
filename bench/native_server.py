"""The device host's server plus two benchmark-only routes, for bench_dashboard.py.

    python bench/native_server.py -c host.toml

serves everything ``device-host serve`` serves (``/`` is the dashboard through the
sandbox, with its pooled instances) and adds, for the plugin named in
``[plugins] dashboard``:

* ``/bench/native/<path>``: the same plugin ``app.py`` run natively in this CPython
  (see native_plugin.py), on an executor of the same size as the sandbox's;
* ``/bench/fresh/<path>``: the sandboxed plugin on a new instance per request
  (``LoadedVersion.new_instance()``, call, close) instead of the pool.

Never deploy this: it runs the plugin outside the sandbox.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web
from native_plugin import NativePlugin

from device_host.config import load_config
from device_host.errors import PluginTrap
from device_host.host import DeviceHost
from device_host.http.app import create_app
from device_host.http.pages import error_page
from device_host.runtime import GuestLog, HostServices, HttpRequest, HttpResponse
from device_host.runtime._exports import handle_http
from device_host.storage.kv import KvStores
from fleet_common.manifest import load_manifest

DROPPED_HEADERS = frozenset(
    {"connection", "content-length", "keep-alive", "set-cookie", "transfer-encoding", "upgrade"}
)
"""As ``device_host.http.dashboard`` drops them from plugin replies."""


def plugin_folder(plugins_dir: Path, name: str) -> Path:
    for manifest in sorted(plugins_dir.glob("*/manifest.toml")):
        if load_manifest(manifest).name == name:
            return manifest.parent
    raise SystemExit(f"native_server: no plugin named {name} in {plugins_dir}")


class BenchRoutes:
    def __init__(self, host: DeviceHost, native: NativePlugin) -> None:
        self._host = host
        self._native = native
        self._executor = ThreadPoolExecutor(
            max_workers=host.config.plugins.pool_size * 2, thread_name_prefix="bench-call"
        )

    def add_to(self, app: web.Application) -> None:
        app.router.add_route("*", "/bench/native/{tail:.*}", self.native)
        app.router.add_route("*", "/bench/fresh/{tail:.*}", self.fresh)
        app.on_cleanup.append(self._shutdown)

    async def native(self, request: web.Request) -> web.StreamResponse:
        plugin_request = await _plugin_request(request)
        return await self._reply(lambda: self._native.handle(plugin_request))

    async def fresh(self, request: web.Request) -> web.StreamResponse:
        plugin_request = await _plugin_request(request)
        slot = self._host.plugins.slot(self._host.config.plugins.dashboard)
        version = slot.version if slot else None
        if version is None:
            return error_page(503, "Plugin unavailable", "The dashboard is not loaded.")

        def work() -> HttpResponse:
            instance = version.new_instance()
            try:
                return handle_http(instance, version.entry_interface, plugin_request)
            finally:
                instance.close()

        return await self._reply(work)

    async def _reply(self, work: Callable[[], HttpResponse]) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        try:
            reply = await loop.run_in_executor(self._executor, work)
        except PluginTrap as trap:
            return error_page(500, "Plugin was stopped", f"{trap.kind}: {trap.detail}")
        response = web.Response(status=reply.status, body=reply.body)
        for key, value in reply.headers:
            if key.lower() not in DROPPED_HEADERS:
                response.headers[key] = value
        return response

    async def _shutdown(self, _app: web.Application) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


async def _plugin_request(request: web.Request) -> HttpRequest:
    return HttpRequest(
        method=request.method,
        path="/" + request.match_info["tail"],
        query=request.query_string,
        headers=[(k.lower(), v) for k, v in request.headers.items()],
        body=await request.read(),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = load_config(args.config)
    host = DeviceHost(config)
    name = config.plugins.dashboard
    native = NativePlugin(
        plugin_folder(config.plugins.dir, name),
        HostServices(sensors=host.samplers, gpio=host.gpio),
        KvStores(config.state.dir / "native-kv"),
        GuestLog(f"{name}-native"),
    )
    app = create_app(host)
    BenchRoutes(host, native).add_to(app)
    web.run_app(
        app,
        host=config.server.host,
        port=config.server.port,
        print=None,
        access_log=None,
        handle_signals=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
