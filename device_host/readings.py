"""Recent sensor readings, from the DHT22 sampler and from plugins of the demo's sensor world."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass

SENSOR_SOURCE_PREFIX = "dht22:"


@dataclass(frozen=True)
class RecordedReading:
    source: str
    temperature_c: float
    humidity_pct: float
    taken_at: float


class ReadingHistory:
    """A ring buffer per source; old readings fall off the end."""

    def __init__(self, capacity: int = 720) -> None:
        self._capacity = capacity
        self._sources: dict[str, deque[RecordedReading]] = {}
        self._lock = threading.Lock()

    def add(self, reading: RecordedReading) -> None:
        with self._lock:
            series = self._sources.setdefault(reading.source, deque(maxlen=self._capacity))
            if series and series[-1].taken_at >= reading.taken_at:
                return  # the same sample seen twice, or a clock step backwards
            series.append(reading)

    def latest(self, prefix: str = "") -> RecordedReading | None:
        """The newest reading among sources whose name starts with ``prefix``."""
        with self._lock:
            candidates = [
                s[-1] for name, s in self._sources.items() if s and name.startswith(prefix)
            ]
        return max(candidates, key=lambda r: r.taken_at, default=None)

    def current(self, max_age_s: float, now: float) -> RecordedReading | None:
        """The newest reading younger than ``max_age_s``: the device's own sensors first,
        then readings that plugins of the demo's sensor world reported."""
        for prefix in (SENSOR_SOURCE_PREFIX, ""):
            reading = self.latest(prefix)
            if reading is not None and now - reading.taken_at <= max_age_s:
                return reading
        return None

    def to_json(self, since: float = 0.0, limit: int = 720) -> dict[str, list[dict[str, object]]]:
        with self._lock:
            return {
                name: [asdict(r) for r in series if r.taken_at > since][-limit:]
                for name, series in self._sources.items()
            }
