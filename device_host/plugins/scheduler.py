"""Runs the periodic plugins: automation ticks, and polls of the demo's sensor plugins."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from device_host.errors import PluginTrap, PluginUnavailable
from device_host.plugins.manager import PluginManager
from device_host.plugins.slot import PluginSlot
from device_host.readings import ReadingHistory, RecordedReading
from device_host.runtime import LoadedVersion
from device_host.runtime.exports import demo_poll, tick
from device_host.runtime.instance import PluginInstance

log = logging.getLogger(__name__)

PERIODIC_WORLDS = frozenset({"automation", "demo:sensor-plugin"})
DEMO_SENSOR_POLL_S = 3.0
"""How often the original demo polled its sensor plugin."""


class TickScheduler:
    """Calls each periodic plugin on its interval; a slow plugin never overlaps itself."""

    def __init__(
        self,
        manager: PluginManager,
        readings: ReadingHistory,
        clock: Callable[[], float] = time.time,
        workers: int = 2,
    ) -> None:
        self._manager = manager
        self._readings = readings
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tick")
        self._next_due: dict[str, float] = {}
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tick-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            now = time.monotonic()
            for slot in self._manager.slots():
                version = slot.version
                if version is None or version.manifest.world not in PERIODIC_WORLDS:
                    continue
                with self._lock:
                    if slot.name in self._running or now < self._next_due.get(slot.name, 0.0):
                        continue
                    self._running.add(slot.name)
                    self._next_due[slot.name] = now + _interval(version)
                self._executor.submit(self._run_one, slot)

    def _run_one(self, slot: PluginSlot) -> None:
        try:
            slot.report_outcome(slot.call(self._work))
        except PluginUnavailable:
            pass
        except PluginTrap as trap:
            log.warning("%s", trap)
        except Exception:
            log.exception("periodic call to %s failed", slot.name)
        finally:
            with self._lock:
                self._running.discard(slot.name)

    def _work(self, version: LoadedVersion, instance: PluginInstance) -> str | None:
        """One tick or poll; returns the plugin's error, if it reported one."""
        manifest = version.manifest
        if manifest.world == "automation":
            return tick(instance, version.entry_interface, int(self._clock() * 1000))
        for reading in demo_poll(instance, version.entry_interface):
            self._readings.add(
                RecordedReading(
                    source=f"{manifest.name}:{reading.sensor_id}",
                    temperature_c=round(reading.temperature, 2),  # f32 noise, not precision
                    humidity_pct=round(reading.humidity, 2),
                    taken_at=reading.timestamp_ms / 1000,
                )
            )
        return None


def _interval(version: LoadedVersion) -> float:
    if version.manifest.world == "demo:sensor-plugin":
        return DEMO_SENSOR_POLL_S
    return float(version.manifest.limits.tick_interval_s)
