"""A plugin slot: the version serving under a name, swapped atomically, with a warm fallback.

After a swap the previous version stays loaded for a probation window. A request that is
safe to retry and traps on the new version is answered by the previous one, so a broken
release costs its users nothing; if the new version keeps trapping it is quarantined and
the slot goes back to the previous version on its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from enum import StrEnum
from typing import TypeVar

from device_host.errors import PluginBusy, PluginTrap, PluginUnavailable, VersionRetired
from device_host.metrics import Metrics
from device_host.plugins.events import EventLog
from device_host.plugins.health import HealthLedger
from device_host.plugins.quarantine import Quarantine, QuarantinePolicy
from device_host.runtime import LoadedVersion
from fleet_common.wire.events import EventKind

T = TypeVar("T")

SWAP_RETRIES = 3
DEFAULT_QUEUE_LIMIT = 128
"""Requests that may wait for a plugin's instances before it answers 503 at once."""


def _never_failed(_result: object) -> bool:
    """The default judgement of a call's result: only a trap (or an exception) is a failure."""
    return False


class PluginState(StrEnum):
    RUNNING = "running"
    QUARANTINED = "quarantined"
    FAILED = "failed"
    """No version could be loaded under this name."""


class PluginSlot:
    """Holds the serving version of one plugin, its warm predecessor and its health record.

    `swap` replaces the version in one assignment: calls that already picked the old
    version finish on it, new calls get the new one. Requests run on the slot's own
    threads (`submit`), one per instance, behind a bounded queue, so a slow plugin delays
    only its own requests.
    """

    def __init__(
        self,
        name: str,
        policy: QuarantinePolicy,
        events: EventLog,
        metrics: Metrics,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        health: HealthLedger | None = None,
    ) -> None:
        self.name = name
        self._queue_limit = queue_limit
        self._policy = policy
        self._lock = threading.Lock()
        self._version: LoadedVersion | None = None
        self._previous: LoadedVersion | None = None
        self._probation_until = 0.0
        self._quarantine = Quarantine(policy)
        self._events = events
        self._metrics = metrics
        self._health = health or HealthLedger()
        self._executor: ThreadPoolExecutor | None = None
        self._queued = 0
        self.traps: Counter[str] = Counter()
        self.calls = 0
        self.fallbacks = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.load_error: str | None = None
        self._last_outcome: str | None = None

    @property
    def version(self) -> LoadedVersion | None:
        return self._version

    def swap(self, new: LoadedVersion) -> LoadedVersion | None:
        """Makes ``new`` the serving version; the old one stays warm for the probation window."""
        with self._lock:
            old, self._version = self._version, new
            stale, self._previous = self._previous, old
            self._probation_until = time.monotonic() + self._policy.probation_s
            self._quarantine.reset()
            self.load_error = None
        if old is not None:
            old.demote()
        if stale is not None:
            stale.retire()
        self._health.serving(self.name, new.manifest.version, new.self_check)
        self._events.add(self.name, new.manifest.version, EventKind.INSTALLED, _origin(new))
        return old

    def refuse(self, version: str, reason: str) -> None:
        """Records a version that failed to load; the serving version, if any, stays."""
        with self._lock:
            self.load_error = reason
            self.last_error, self.last_error_at = reason, time.time()
        self._events.add(self.name, version, EventKind.REFUSED, reason)

    def clear_load_error(self) -> None:
        """The serving version is what was asked for again: an earlier refusal is moot."""
        with self._lock:
            self.load_error = None

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
            previous, self._previous = self._previous, None
            executor, self._executor = self._executor, None
        for version in (previous, old):
            if version is not None:
                version.retire()
        if executor is not None:
            executor.shutdown(wait=False)  # queued requests find no version: 503
        if old is not None:
            self._events.add(self.name, old.manifest.version, EventKind.REMOVED)

    def submit(
        self,
        work: Callable[[LoadedVersion], T],
        *,
        retry_safe: bool,
        failed: Callable[[T], bool] = _never_failed,
    ) -> Future[T]:
        """Queues a request on this plugin's own threads; raises `PluginBusy` when full.

        The check happens before anything is queued, so a flood against one plugin is
        turned away at once instead of holding threads other plugins need. ``failed`` is
        passed to `call`.
        """
        with self._lock:
            version = self._version
            if version is None:
                raise PluginUnavailable(self._unavailable_reason())
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=version.pool_size, thread_name_prefix=f"plugin-{self.name}"
                )
            limit = version.pool_size + self._queue_limit
            if self._queued >= limit:
                raise PluginBusy(
                    f"plugin {self.name} has {self._queued} requests in progress or waiting"
                )
            self._queued += 1
            executor = self._executor
        try:
            future = executor.submit(self.call, work, retry_safe=retry_safe, failed=failed)
        except RuntimeError:
            self._dequeue()
            raise PluginUnavailable(f"plugin {self.name} was removed") from None
        future.add_done_callback(lambda _future: self._dequeue())
        return future

    def call(
        self,
        work: Callable[[LoadedVersion], T],
        *,
        retry_safe: bool = False,
        failed: Callable[[T], bool] = _never_failed,
        tick: bool = False,
    ) -> T:
        """Runs ``work`` on the serving version, recording latency, traps and quarantine.

        A ``retry_safe`` call that traps on a version in probation is run again on the
        previous version, and its caller never sees the trap. Each run is counted in the
        health of the version that ran it; ``failed`` says whether a result that is not a
        trap is a failure all the same (a 5xx page, a tick's error), and ``tick`` marks a
        periodic call.
        """
        for _attempt in range(SWAP_RETRIES):
            version, fallback = self._pick()
            try:
                return self._run(version, work, failed, tick)
            except VersionRetired:
                continue  # swapped while waiting for an instance: the new version takes it
            except PluginTrap:
                if not retry_safe or fallback is None:
                    raise
            self._metrics.inc("plugin_fallbacks_total", plugin=self.name)
            self._health.fallback(self.name, version.manifest.version)
            with self._lock:
                self.fallbacks += 1
            try:
                return self._run(fallback, work, failed, tick)
            except VersionRetired:
                continue
        raise PluginUnavailable(f"plugin {self.name} is being swapped too often to serve")

    def _run(
        self,
        version: LoadedVersion,
        work: Callable[[LoadedVersion], T],
        failed: Callable[[T], bool],
        tick: bool,
    ) -> T:
        """One run of ``work`` on ``version``, timed, its trap recorded, its outcome counted."""
        started = time.monotonic()
        trap: PluginTrap | None = None
        bad, ran = True, True
        try:
            result = work(version)
            bad = failed(result)
            return result
        except VersionRetired:
            ran = False  # it got no instance: the caller retries on the version that replaced it
            raise
        except PluginTrap as exc:
            trap = exc
            self._record_trap(version, exc)
            raise
        finally:
            seconds = time.monotonic() - started
            self._metrics.observe("plugin_call_seconds", seconds, plugin=self.name)
            if ran:
                self._health.record(
                    self.name,
                    version.manifest.version,
                    seconds=seconds,
                    failed=bad,
                    trap=None if trap is None else trap.kind,
                    tick=tick,
                    self_check=version.self_check,
                )

    def state(self) -> PluginState:
        with self._lock:
            return self._state_locked(time.monotonic())

    def to_json(self) -> dict[str, object]:
        version = self._version
        now = time.monotonic()
        with self._lock:
            previous = self._previous if now < self._probation_until else None
            report: dict[str, object] = {
                "name": self.name,
                "state": str(self._state_locked(now)),
                "calls": self.calls,
                "trap_count": sum(self.traps.values()),
                "traps": dict(self.traps),
                "fallbacks": self.fallbacks,
                "last_error": self.last_error,
                "last_error_at": self.last_error_at,
                "load_error": self.load_error,
                "quarantined_for_s": round(self._quarantine.remaining_s(now), 1),
                "times_quarantined": self._quarantine.times_quarantined,
                "probation": None
                if previous is None
                else {
                    "fallback_version": previous.manifest.version,
                    "ends_in_s": round(self._probation_until - now, 1),
                },
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

    def _pick(self) -> tuple[LoadedVersion, LoadedVersion | None]:
        """The version to call and, while it is in probation, the one to fall back to."""
        now = time.monotonic()
        expired = None
        with self._lock:
            version = self._version
            if version is None:
                raise PluginUnavailable(self._unavailable_reason())
            if self._previous is not None and now >= self._probation_until:
                expired, self._previous = self._previous, None
            if self._quarantine.active(now):
                wait = self._quarantine.remaining_s(now)
                raise PluginUnavailable(
                    f"plugin {self.name} is quarantined for {wait:.0f} s after repeated crashes"
                )
            self.calls += 1
            fallback = self._previous
        if expired is not None:
            expired.retire()
        return version, fallback

    def _dequeue(self) -> None:
        with self._lock:
            self._queued -= 1

    def _unavailable_reason(self) -> str:
        reason = self.load_error or "it is still loading"
        return f"plugin {self.name} has no loaded version: {reason}"

    def _state_locked(self, now: float) -> PluginState:
        if self._version is None:
            return PluginState.FAILED
        return PluginState.QUARANTINED if self._quarantine.active(now) else PluginState.RUNNING

    def _record_trap(self, version: LoadedVersion, trap: PluginTrap) -> None:
        reverted_to = None
        with self._lock:
            self.traps[trap.kind] += 1
            self.last_error, self.last_error_at = str(trap), time.time()
            quarantined = (
                trap.kind.plugins_fault
                and self._version is version
                and self._quarantine.record_trap(time.monotonic())
            )
            if quarantined and self._previous is not None:
                reverted_to, self._version, self._previous = self._previous, self._previous, None
                self._quarantine.reset()
        self._metrics.inc("plugin_traps_total", plugin=self.name, kind=str(trap.kind))
        self._events.add(self.name, version.manifest.version, EventKind.TRAPPED, str(trap))
        if quarantined:
            self._events.add(self.name, version.manifest.version, EventKind.QUARANTINED, str(trap))
        if reverted_to is not None:
            version.retire()
            detail = (
                f"{version.manifest.version} kept trapping in probation; "
                f"back on {reverted_to.manifest.version} (sha256 {reverted_to.sha256[:12]})"
            )
            # The event names the version that failed; its detail, the one serving now.
            self._events.add(self.name, version.manifest.version, EventKind.REVERTED, detail)


def _origin(version: LoadedVersion) -> str:
    took_ms = version.load_seconds * 1000
    return f"sha256 {version.sha256[:12]}, {version.how.phrase}, loaded in {took_ms:.0f} ms"
