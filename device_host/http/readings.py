"""Readings as JSON: ``/api`` in the original demo's shape, ``/api/readings`` with history.

Both are public: the demo's dashboard page fetches ``/api`` every 2 s, and a reading says
no more than the dashboard at ``/`` shows anyway.
"""

from __future__ import annotations

import time

from aiohttp import web

from device_host.host import DeviceHost
from device_host.http.status import sensor_json
from device_host.readings import SENSOR_SOURCE_PREFIX, RecordedReading


class ReadingRoutes:
    def __init__(self, host: DeviceHost) -> None:
        self._host = host

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/api", self.demo_api)
        app.router.add_get("/api/readings", self.readings)

    async def demo_api(self, _request: web.Request) -> web.Response:
        """The latest reading of every series, exactly as the original demo's host served it:
        demo sensor plugins' readings first, under the ids they chose, then the host's own
        sensors as ``dht22-gpio<pin>``; ``last_update`` is the newest ``timestamp_ms``."""
        latest = self._host.readings.latest()
        newest = max((r.taken_at for r in latest), default=None)
        return web.json_response(
            {
                "readings": [_demo_json(r) for r in latest],
                "last_update": None if newest is None else _ms(newest),
            }
        )

    async def readings(self, request: web.Request) -> web.Response:
        """The newest reading (the host's sensor first), every sensor's state, and each
        series' history after ``since`` (Unix seconds)."""
        try:
            since = float(request.query.get("since", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="since must be a Unix timestamp") from None
        history = self._host.readings
        latest = history.latest()
        own = [r for r in latest if r.source.startswith(SENSOR_SOURCE_PREFIX)]
        newest = max(own or latest, key=lambda r: r.taken_at, default=None)
        now = time.time()
        return web.json_response(
            {
                "now": now,
                "latest": None
                if newest is None
                else {**newest.to_json(), "age_s": now - newest.taken_at},
                "sensors": [sensor_json(s, now) for s in self._host.samplers.values()],
                "history": history.to_json(since),
            }
        )


def _demo_json(reading: RecordedReading) -> dict[str, object]:
    return {
        "sensor_id": reading.sensor_id,
        "temperature": reading.temperature_c,
        "humidity": reading.humidity_pct,
        "timestamp_ms": _ms(reading.taken_at),
    }


def _ms(unix_s: float) -> int:
    return int(unix_s * 1000)
