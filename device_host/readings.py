"""Recent sensor readings: the host's own DHT22 samplers, and what demo sensor plugins report.

Plugin readings are untrusted input. Each plugin writes only into its own namespace
(``<plugin>/<sensor-id>``, while the host's series are ``dht22:<pin>``), so no plugin can
overwrite the host's sensor; a reading is checked before it is kept (sensor id, the DHT22's
physical range, a timestamp neither in the future nor long past); and the number of series
per plugin, series overall and points per series are bounded, so memory is too. Removing a
plugin drops its series.
"""

from __future__ import annotations

import enum
import re
import threading
from collections import deque
from dataclasses import dataclass

from device_host.errors import DeviceHostError
from device_host.hardware import Reading

SENSOR_SOURCE_PREFIX = "dht22:"
"""Series of the host's own samplers are ``dht22:<pin>``; plugin series contain a ``/``."""
POINTS_PER_SERIES = 720
"""24 minutes of the host's 2 s samples, or 36 minutes of a demo sensor's 3 s polls."""
MAX_SERIES_PER_PLUGIN = 8
MAX_PLUGIN_SERIES = 32
"""Across all plugins: with ``POINTS_PER_SERIES`` this bounds plugin readings to ~3.5 MB."""
MAX_FUTURE_SKEW_S = 5.0
"""A plugin's clock is the host's (``get-timestamp-ms``), so more than this is a lie."""
MAX_PAST_S = 600.0
"""A poll reports current readings; older ones would be stale on arrival (and a timestamp
before 2000 would make the control plane refuse the heartbeat that carries it)."""
TEMPERATURE_RANGE_C = (-40.0, 80.0)
HUMIDITY_RANGE_PCT = (0.0, 100.0)
"""The DHT22's measuring range: anything outside was not measured by one."""
MAX_SENSOR_ID_CHARS = 23
"""So that ``<plugin>/<sensor-id>`` fits the 64 characters the control plane stores."""
_SENSOR_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_SENSOR_ID_CHARS - 1}}}")


class RefusalReason(enum.StrEnum):
    """Why a plugin's reading was not kept; bounded, so it can label a metric."""

    BAD_SENSOR_ID = "bad-sensor-id"
    OUT_OF_RANGE = "out-of-range"
    FUTURE = "future-timestamp"
    TOO_OLD = "too-old"
    NOT_NEWER = "not-newer"
    TOO_MANY_SERIES = "too-many-series"


class ReadingRefused(DeviceHostError):
    """A plugin reported a reading the host will not keep; its other readings still count."""

    def __init__(self, plugin: str, sensor_id: str, reason: RefusalReason, detail: str) -> None:
        super().__init__(f"plugin {plugin}: reading of sensor {sensor_id[:40]!r} refused: {detail}")
        self.plugin = plugin
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedReading:
    source: str
    """The series: ``dht22:<pin>`` for the host's sampler, ``<plugin>/<sensor-id>`` else."""
    temperature_c: float
    humidity_pct: float
    taken_at: float
    sensor_id: str
    """The id as the demo's ``/api`` shows it: ``dht22-gpio<pin>``, or the plugin's own."""

    def to_json(self) -> dict[str, object]:
        """The shape heartbeats and ``/api/readings`` carry."""
        return {
            "source": self.source,
            "temperature_c": self.temperature_c,
            "humidity_pct": self.humidity_pct,
            "taken_at": self.taken_at,
        }


class ReadingHistory:
    """A bounded ring buffer per series, behind one lock held only for O(series) work."""

    def __init__(self, points_per_series: int = POINTS_PER_SERIES) -> None:
        self._points = points_per_series
        self._host: dict[int, deque[RecordedReading]] = {}
        self._plugins: dict[str, dict[str, deque[RecordedReading]]] = {}
        self._plugin_series = 0
        self._lock = threading.Lock()

    def record_sensor(self, pin: int, reading: Reading) -> None:
        """Keeps a sample of the host's own sampler on ``pin`` (a repeated sample is ignored)."""
        with self._lock:
            series = self._host.setdefault(pin, deque(maxlen=self._points))
            if series and series[-1].taken_at >= reading.taken_at:
                return
            source, sensor_id = _names(series, f"{SENSOR_SOURCE_PREFIX}{pin}", f"dht22-gpio{pin}")
            series.append(
                RecordedReading(
                    source=source,
                    sensor_id=sensor_id,
                    temperature_c=reading.temperature_c,
                    humidity_pct=reading.humidity_pct,
                    taken_at=reading.taken_at,
                )
            )

    def record_plugin(
        self,
        plugin: str,
        sensor_id: str,
        temperature_c: float,
        humidity_pct: float,
        taken_at: float,
        now: float,
    ) -> None:
        """Keeps one reading a demo sensor plugin reported, in the plugin's own series.

        Raises ReadingRefused (naming the plugin and the reason) for a malformed id, a value
        no DHT22 measures, a timestamp more than ``MAX_FUTURE_SKEW_S`` ahead of ``now`` or
        ``MAX_PAST_S`` behind it, one not newer than the series' last, or a new series
        beyond the plugin's or the host's bound.
        """

        def refuse(reason: RefusalReason, detail: str) -> ReadingRefused:
            return ReadingRefused(plugin, sensor_id, reason, detail)

        if not _SENSOR_ID.fullmatch(sensor_id):
            raise refuse(
                RefusalReason.BAD_SENSOR_ID,
                f"a sensor id is 1 to {MAX_SENSOR_ID_CHARS} letters, digits, '.', '_' or '-'",
            )
        low_c, high_c = TEMPERATURE_RANGE_C
        low_pct, high_pct = HUMIDITY_RANGE_PCT
        if not (low_c <= temperature_c <= high_c and low_pct <= humidity_pct <= high_pct):
            raise refuse(
                RefusalReason.OUT_OF_RANGE,
                f"{temperature_c} °C, {humidity_pct} % is outside a DHT22's range "
                f"({low_c:g}..{high_c:g} °C, {low_pct:g}..{high_pct:g} %)",
            )
        if taken_at > now + MAX_FUTURE_SKEW_S:
            raise refuse(RefusalReason.FUTURE, f"taken {taken_at - now:.0f} s in the future")
        if taken_at < now - MAX_PAST_S:
            raise refuse(RefusalReason.TOO_OLD, f"taken {now - taken_at:.0f} s ago")
        with self._lock:
            owned = self._plugins.setdefault(plugin, {})
            series = owned.get(sensor_id)
            if series is None:
                if len(owned) >= MAX_SERIES_PER_PLUGIN:
                    raise refuse(
                        RefusalReason.TOO_MANY_SERIES,
                        f"a plugin may report at most {MAX_SERIES_PER_PLUGIN} sensors",
                    )
                if self._plugin_series >= MAX_PLUGIN_SERIES:
                    raise refuse(
                        RefusalReason.TOO_MANY_SERIES,
                        f"the device keeps at most {MAX_PLUGIN_SERIES} plugin sensors",
                    )
                series = owned[sensor_id] = deque(maxlen=self._points)
                self._plugin_series += 1
            elif series[-1].taken_at >= taken_at:
                raise refuse(RefusalReason.NOT_NEWER, "not newer than its last reading")
            source, kept_id = _names(series, f"{plugin}/{sensor_id}", sensor_id)
            series.append(
                RecordedReading(
                    source=source,
                    sensor_id=kept_id,
                    temperature_c=round(temperature_c, 2),
                    humidity_pct=round(humidity_pct, 2),
                    taken_at=taken_at,
                )
            )

    def drop_plugin(self, plugin: str) -> None:
        """Forgets every series of a removed plugin."""
        with self._lock:
            self._plugin_series -= len(self._plugins.pop(plugin, {}))

    def latest(self) -> list[RecordedReading]:
        """The newest reading of every series: plugins' first (by name), then the host's."""
        with self._lock:
            plugin_series = [
                s for _, owned in sorted(self._plugins.items()) for s in owned.values()
            ]
            host_series = [s for _, s in sorted(self._host.items())]
            return [s[-1] for s in (*plugin_series, *host_series) if s]

    def demo_reading(self, max_age_s: float, now: float) -> RecordedReading | None:
        """What a demo dashboard renders: the newest fresh reading a demo sensor plugin
        reported (the original demo's data flow), else the newest fresh host sample."""
        fresh = [r for r in self.latest() if now - r.taken_at <= max_age_s]
        plugins = [r for r in fresh if not r.source.startswith(SENSOR_SOURCE_PREFIX)]
        return max(plugins or fresh, key=lambda r: r.taken_at, default=None)

    def to_json(self, since: float = 0.0, limit: int = 720) -> dict[str, list[dict[str, object]]]:
        """Each series' readings newer than ``since`` (at most ``limit``, oldest first).

        Only references are copied under the lock; the dicts are built after it is released.
        """
        with self._lock:
            everything = [
                *self._host.values(),
                *(s for owned in self._plugins.values() for s in owned.values()),
            ]
            newer = [_newer(series, since, limit) for series in everything if series]
        return {found[0].source: [r.to_json() for r in found] for found in newer if found}


def _names(series: deque[RecordedReading], source: str, sensor_id: str) -> tuple[str, str]:
    """A series' points share its first point's strings: a fresh copy per point would
    double the memory a full series holds."""
    return (series[0].source, series[0].sensor_id) if series else (source, sensor_id)


def _newer(series: deque[RecordedReading], since: float, limit: int) -> list[RecordedReading]:
    """Walks from the newest end, so a frequent ``since`` poll costs only the new points."""
    found: list[RecordedReading] = []
    for reading in reversed(series):
        if reading.taken_at <= since or len(found) >= limit:
            break
        found.append(reading)
    found.reverse()
    return found
