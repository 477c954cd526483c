"""Runs the periodic plugins: automation ticks, and polls of the demo's sensor plugins.

Ticks run on threads of lower CPU priority than requests: a plugin spinning through its
whole budget every tick must not take the cores that serve pages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from device_host.errors import PluginTrap, PluginUnavailable
from device_host.logs import OncePerWindow
from device_host.metrics import Metrics
from device_host.plugins.manager import PluginManager
from device_host.plugins.priority import TICK_NICENESS, set_thread_niceness
from device_host.plugins.slot import PluginSlot
from device_host.readings import ReadingHistory, ReadingRefused
from device_host.runtime import LoadedVersion, PeriodicOutcome

log = logging.getLogger(__name__)


class TickScheduler:
    """Calls each periodic plugin on its interval; a slow plugin never overlaps itself."""

    def __init__(
        self,
        manager: PluginManager,
        readings: ReadingHistory,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        workers: int = 2,
    ) -> None:
        self._manager = manager
        self._readings = readings
        self._metrics = metrics
        self._refusals = OncePerWindow(log)
        self._clock = clock
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="tick", initializer=_lower_priority
        )
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
                if version is None or not version.world.periodic:
                    continue
                with self._lock:
                    if slot.name in self._running or now < self._next_due.get(slot.name, 0.0):
                        continue
                    self._running.add(slot.name)
                    self._next_due[slot.name] = now + version.period_s
                self._executor.submit(self._run_one, slot)

    def _run_one(self, slot: PluginSlot) -> None:
        try:
            slot.report_outcome(slot.call(self._work, failed=_reported_error, tick=True))
        except PluginUnavailable:
            pass
        except PluginTrap as trap:
            log.warning("%s", trap)
        except Exception:
            log.exception("periodic call to %s failed", slot.name)
        finally:
            with self._lock:
                self._running.discard(slot.name)

    def _work(self, version: LoadedVersion) -> str | None:
        """One tick or poll; returns the plugin's error, if it reported one."""
        now = self._clock()
        outcome: PeriodicOutcome = version.run_periodic(int(now * 1000))
        name = version.manifest.name
        for reading in outcome.readings:
            try:
                self._readings.record_plugin(
                    name,
                    reading.sensor_id,
                    reading.temperature,
                    reading.humidity,
                    reading.timestamp_ms / 1000,
                    now,
                )
            except ReadingRefused as refused:
                self._metrics.inc(
                    "plugin_readings_refused_total", plugin=name, reason=str(refused.reason)
                )
                self._refusals.warning(name, str(refused))
        return outcome.error


def _reported_error(error: str | None) -> bool:
    """A tick that returned an error failed, though nothing trapped."""
    return error is not None


def _lower_priority() -> None:
    set_thread_niceness(TICK_NICENESS)
