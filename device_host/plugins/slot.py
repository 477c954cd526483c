"""A plugin slot: the version currently serving under a name, swapped atomically."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

from device_host.errors import PluginTrap, PluginUnavailable, VersionRetired
from device_host.metrics import Metrics
from device_host.plugins.events import EventKind, EventLog
from device_host.plugins.quarantine import Quarantine, QuarantinePolicy
from device_host.runtime import LoadedVersion
from device_host.runtime.instance import PluginInstance

T = TypeVar("T")

SWAP_RETRIES = 3


class PluginState(StrEnum):
    RUNNING = "running"
    QUARANTINED = "quarantined"
    FAILED = "failed"
    """No version could be loaded under this name."""


class PluginSlot:
    """Holds the serving version of one plugin and its health record.

    `swap` replaces the version in one assignment: calls that already picked the old
    version finish on it, new calls get the new one.
    """

    def __init__(
        self, name: str, policy: QuarantinePolicy, events: EventLog, metrics: Metrics
    ) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._version: LoadedVersion | None = None
        self._quarantine = Quarantine(policy)
        self._events = events
        self._metrics = metrics
        self.traps: Counter[str] = Counter()
        self.calls = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.load_error: str | None = None
        self._last_outcome: str | None = None

    @property
    def version(self) -> LoadedVersion | None:
        return self._version

    def swap(self, new: LoadedVersion) -> LoadedVersion | None:
        """Makes ``new`` the serving version and retires the old one."""
        with self._lock:
            old, self._version = self._version, new
            self._quarantine.reset()
            self.load_error = None
        if old is not None:
            old.retire()
        self._events.add(self.name, new.manifest.version, EventKind.INSTALLED, _origin(new))
        return old

    def refuse(self, version: str, reason: str) -> None:
        """Records a version that failed to load; the serving version, if any, stays."""
        with self._lock:
            self.load_error = reason
            self.last_error, self.last_error_at = reason, time.time()
        self._events.add(self.name, version, EventKind.REFUSED, reason)

    def report_outcome(self, error: str | None) -> None:
        """Records what a periodic call returned; logs only changes, not every tick."""
        logger = logging.getLogger(f"plugin.{self.name}")
        with self._lock:
            changed = error != self._last_outcome
            self._last_outcome = error
            if error is not None:
                self.last_error, self.last_error_at = error, time.time()
        if changed and error is not None:
            logger.warning("tick failed: %s", error)
        elif changed:
            logger.info("tick succeeded again")

    def clear(self) -> None:
        with self._lock:
            old, self._version = self._version, None
        if old is not None:
            old.retire()
            self._events.add(self.name, old.manifest.version, EventKind.REMOVED)

    def call(self, work: Callable[[LoadedVersion, PluginInstance], T]) -> T:
        """Runs ``work`` on the serving version, recording latency, traps and quarantine."""
        for _attempt in range(SWAP_RETRIES):
            try:
                return self._call_current(work)
            except VersionRetired:
                continue  # swapped while waiting for an instance: the new version takes it
        raise PluginUnavailable(f"plugin {self.name} is being swapped too often to serve")

    def _call_current(self, work: Callable[[LoadedVersion, PluginInstance], T]) -> T:
        now = time.monotonic()
        with self._lock:
            version = self._version
            if version is None:
                reason = self.load_error or "it is still loading"
                raise PluginUnavailable(f"plugin {self.name} has no loaded version: {reason}")
            if self._quarantine.active(now):
                wait = self._quarantine.remaining_s(now)
                raise PluginUnavailable(
                    f"plugin {self.name} is quarantined for {wait:.0f} s after repeated crashes"
                )
            self.calls += 1
        try:
            return version.run(lambda instance: work(version, instance))
        except PluginTrap as trap:
            self._record_trap(version, trap)
            raise
        finally:
            self._metrics.observe("plugin_call_seconds", time.monotonic() - now, plugin=self.name)

    def state(self) -> PluginState:
        with self._lock:
            return self._state_locked(time.monotonic())

    def to_json(self) -> dict[str, object]:
        version = self._version
        now = time.monotonic()
        with self._lock:
            report: dict[str, object] = {
                "name": self.name,
                "state": str(self._state_locked(now)),
                "calls": self.calls,
                "trap_count": sum(self.traps.values()),
                "traps": dict(self.traps),
                "last_error": self.last_error,
                "last_error_at": self.last_error_at,
                "load_error": self.load_error,
                "quarantined_for_s": round(self._quarantine.remaining_s(now), 1),
                "times_quarantined": self._quarantine.times_quarantined,
            }
        if version is not None:
            report.update(
                version=version.manifest.version,
                world=version.manifest.world,
                sha256=version.sha256,
                size=version.size,
                instances=version.live_instances,
                capabilities=version.manifest.capabilities.describe(),
            )
        return report

    def _state_locked(self, now: float) -> PluginState:
        if self._version is None:
            return PluginState.FAILED
        return PluginState.QUARANTINED if self._quarantine.active(now) else PluginState.RUNNING

    def _record_trap(self, version: LoadedVersion, trap: PluginTrap) -> None:
        with self._lock:
            self.traps[trap.kind] += 1
            self.last_error, self.last_error_at = str(trap), time.time()
            quarantined = self._version is version and self._quarantine.record_trap(
                time.monotonic()
            )
        self._metrics.inc("plugin_traps_total", plugin=self.name, kind=str(trap.kind))
        self._events.add(self.name, version.manifest.version, EventKind.TRAPPED, str(trap))
        if quarantined:
            self._events.add(self.name, version.manifest.version, EventKind.QUARANTINED, str(trap))


def _origin(version: LoadedVersion) -> str:
    source = "compiled cache" if version.from_cache else "fresh compile"
    return f"sha256 {version.sha256[:12]}, {source}, loaded in {version.load_seconds * 1000:.0f} ms"
