"""Routes that report on the host: ``/healthz``."""

from __future__ import annotations

import time

from aiohttp import web

from device_host.hardware import Dht22Sampler
from device_host.host import DeviceHost
from device_host.http.access import ACCESS_POLICY
from device_host.plugins.slot import PluginState


class StatusRoutes:
    def __init__(self, host: DeviceHost) -> None:
        self._host = host

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self.healthz)

    async def healthz(self, request: web.Request) -> web.Response:
        """Always 200 while the host runs; ``status`` says whether every plugin is serving.

        Only a trusted request (loopback or the device token) gets the detail: plugins,
        versions, errors and the agent's state tell an attacker what to aim at.
        """
        host = self._host
        now = time.time()
        plugins = [slot.to_json() for slot in host.plugins.slots()]
        agent_ok = host.agent is None or host.agent.healthy
        if not host.ready:
            status = "starting"
        elif agent_ok and all(p["state"] == PluginState.RUNNING for p in plugins):
            status = "ok"
        else:
            status = "degraded"
        if not request.app[ACCESS_POLICY].trusted(request):
            return web.json_response({"status": status, "host_version": host.version})
        return web.json_response(
            {
                "status": status,
                "host_version": host.version,
                "uptime_s": round(now - host.started_at, 1),
                "plugins": plugins,
                "sensors": [sensor_json(s, now) for s in host.samplers.values()],
                "gpio": {str(pin): high for pin, high in host.gpio.levels().items()},
                "agent": host.agent.status() if host.agent is not None else None,
                "watcher": host.watcher.status() if host.watcher is not None else None,
                "events": host.events.recent(),
            }
        )


def sensor_json(sampler: Dht22Sampler, now: float) -> dict[str, object]:
    """The sampler's state, plus ``status``: what a plugin's read would answer right now."""
    error = sampler.lookup().error
    return {**sampler.snapshot().to_json(now), "status": str(error) if error else "ok"}
