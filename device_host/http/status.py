"""Routes that report on the host: ``/healthz``, ``/metrics`` and ``/api/readings``."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from aiohttp import web

from device_host.hardware import Dht22Sampler
from device_host.host import DeviceHost
from device_host.metrics import Labels
from device_host.plugins.slot import PluginState
from device_host.readings import SENSOR_SOURCE_PREFIX
from device_host.runtime.memory import resident_bytes


class StatusRoutes:
    def __init__(self, host: DeviceHost) -> None:
        self._host = host

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/api/readings", self.readings)

    async def healthz(self, _request: web.Request) -> web.Response:
        """Always 200 while the host runs; ``status`` says whether every plugin is serving."""
        host = self._host
        now = time.time()
        plugins = [slot.to_json() for slot in host.plugins.slots()]
        if not host.ready:
            status = "starting"
        elif all(p["state"] == PluginState.RUNNING for p in plugins):
            status = "ok"
        else:
            status = "degraded"
        return web.json_response(
            {
                "status": status,
                "host_version": host.version,
                "uptime_s": round(now - host.started_at, 1),
                "plugins": plugins,
                "sensors": [_sensor_json(s, now) for s in host.samplers.values()],
                "gpio": {str(pin): high for pin, high in host.gpio.levels().items()},
                "agent": host.agent.status() if host.agent is not None else None,
                "events": host.events.recent(),
            }
        )

    async def metrics(self, _request: web.Request) -> web.Response:
        host = self._host
        gauges: list[tuple[str, Labels, float]] = []
        slots = host.plugins.slots()
        owned = [(s.name, span) for s in slots if s.version for span in s.version.memory_spans()]
        used: Counter[str] = Counter()
        for (name, _span), size in zip(owned, resident_bytes([s for _, s in owned]), strict=True):
            used[name] += size
        for slot in slots:
            labels: Labels = (("plugin", slot.name),)
            version = slot.version
            gauges.append(
                ("plugin_up", labels, 1.0 if slot.state() == PluginState.RUNNING else 0.0)
            )
            if version is not None:
                gauges.append(("plugin_instances", labels, float(version.live_instances)))
                limit = version.manifest.limits.memory_mib << 20
                gauges.append(("plugin_memory_limit_bytes", labels, float(limit)))
                gauges.append(("plugin_memory_bytes", labels, float(used[slot.name])))
        now = time.time()
        for pin, sampler in host.samplers.items():
            snapshot = sampler.snapshot()
            age = snapshot.age_s(now)
            if age is not None:
                gauges.append(("sensor_reading_age_seconds", (("pin", str(pin)),), age))
        gauges += [("process_" + k, (), float(v)) for k, v in _process_memory().items()]
        text = host.metrics.render(gauges)
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    async def readings(self, request: web.Request) -> web.Response:
        try:
            since = float(request.query.get("since", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="since must be a Unix timestamp") from None
        readings = self._host.readings
        latest = readings.latest(SENSOR_SOURCE_PREFIX) or readings.latest()
        now = time.time()
        return web.json_response(
            {
                "now": now,
                "latest": None
                if latest is None
                else {**latest.__dict__, "age_s": now - latest.taken_at},
                "sensors": [_sensor_json(s, now) for s in self._host.samplers.values()],
                "history": self._host.readings.to_json(since),
            }
        )


def _sensor_json(sampler: Dht22Sampler, now: float) -> dict[str, object]:
    """The sampler's state, plus ``status``: what a plugin's read would answer right now."""
    error = sampler.lookup().error
    return {**sampler.snapshot().to_json(now), "status": str(error) if error else "ok"}


def _process_memory() -> dict[str, int]:
    """PSS counts shared compiled-code pages once, so it is the honest per-host figure."""
    fields = {"Rss:": "rss_bytes", "Pss:": "pss_bytes"}
    memory = {}
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            parts = line.split()
            if parts and parts[0] in fields:
                memory[fields[parts[0]]] = int(parts[1]) * 1024
    except OSError:
        pass
    return memory
