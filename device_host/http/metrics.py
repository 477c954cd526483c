"""``GET /metrics``: the host's counters and histograms, and gauges computed at scrape time."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web
from prometheus_client.metrics_core import Metric

from device_host.host import DeviceHost
from device_host.metrics import CONTENT_TYPE, gauge
from device_host.plugins.slot import PluginState
from device_host.runtime import resident_bytes


class MetricsRoutes:
    def __init__(self, host: DeviceHost) -> None:
        self._host = host

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/metrics", self.metrics)

    async def metrics(self, _request: web.Request) -> web.Response:
        body = self._host.metrics.exposition(HostGauges(self._host))
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


class HostGauges:
    """A prometheus-client collector for one scrape: plugin state and memory, sensor age,
    and the process's own memory, read from the host as they are right now."""

    def __init__(self, host: DeviceHost) -> None:
        self._host = host

    def collect(self) -> Iterator[Metric]:
        yield from self._plugins()
        ages = gauge("sensor_reading_age_seconds")
        now = time.time()
        for pin, sampler in sorted(self._host.samplers.items()):
            age = sampler.snapshot().age_s(now)
            if age is not None:
                ages.add_metric([str(pin)], age)
        yield ages
        for name, value in _process_memory().items():
            family = gauge(name)
            family.add_metric([], value)
            yield family

    def _plugins(self) -> Iterator[Metric]:
        slots = self._host.plugins.slots()
        owned = [(s.name, span) for s in slots if s.version for span in s.version.memory_spans()]
        used: Counter[str] = Counter()
        for (name, _span), size in zip(owned, resident_bytes([s for _, s in owned]), strict=True):
            used[name] += size
        up, instances, limits, memory = (
            gauge(name)
            for name in (
                "plugin_up",
                "plugin_instances",
                "plugin_memory_limit_bytes",
                "plugin_memory_bytes",
            )
        )
        for slot in slots:
            labels = [slot.name]
            up.add_metric(labels, 1.0 if slot.state() == PluginState.RUNNING else 0.0)
            version = slot.version
            if version is not None:
                instances.add_metric(labels, version.live_instances)
                limits.add_metric(labels, version.manifest.limits.memory_mib << 20)
                memory.add_metric(labels, used[slot.name])
        yield from (up, instances, limits, memory)


def _process_memory() -> dict[str, int]:
    """PSS counts shared compiled-code pages once, so it is the honest per-host figure."""
    fields = {"Rss:": "process_rss_bytes", "Pss:": "process_pss_bytes"}
    memory = {}
    try:
        for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
            parts = line.split()
            if parts and parts[0] in fields:
                memory[fields[parts[0]]] = int(parts[1]) * 1024
    except OSError:
        pass
    return memory
