"""All plugin slots of this host, and installing a version into one."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path

from device_host.errors import SelfCheckFailed
from device_host.log_tail import LogTail
from device_host.metrics import Metrics
from device_host.plugins.events import EventLog
from device_host.plugins.health import HealthLedger
from device_host.plugins.quarantine import QuarantinePolicy
from device_host.plugins.slot import DEFAULT_QUEUE_LIMIT, PluginSlot
from device_host.runtime import (
    ArtifactCache,
    Delivered,
    GuestLog,
    LoadContext,
    LoadedVersion,
    load_version,
)
from fleet_common.digest import file_sha256
from fleet_common.errors import PluginLoadError
from fleet_common.manifest import Manifest
from fleet_common.wire.reports import EngineReport

log = logging.getLogger(__name__)

KeepSource = Callable[[], Iterable[str]]
"""Names sha256s of components that must stay compiled, e.g. the agent's last good releases."""


class PluginManager:
    """Loads versions off the request path and swaps them into their slots.

    Loads run one at a time: compiling a component takes hundreds of MB, and a device
    must not do two at once. With ``prune_compiled`` the compiled cache is pruned after
    every install and removal to what `referenced_sha256s` names; leave it off for a
    cache directory that other hosts share.
    """

    def __init__(
        self,
        context: LoadContext,
        policy: QuarantinePolicy,
        events: EventLog,
        metrics: Metrics,
        *,
        prune_compiled: bool = False,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
    ) -> None:
        self._context = context
        self._queue_limit = queue_limit
        self._policy = policy
        self.events = events
        self.health = HealthLedger()
        """Every slot's per-version counters, for the agent's heartbeats."""
        self.log_tail = LogTail()
        """Every plugin's recent output, for the agent's heartbeats."""
        self._metrics = metrics
        self._prune_compiled = prune_compiled
        self._slots: dict[str, PluginSlot] = {}
        self._guest_logs: dict[str, GuestLog] = {}
        self._live: weakref.WeakSet[LoadedVersion] = weakref.WeakSet()
        self._keep_sources: list[KeepSource] = []
        self._lock = threading.Lock()
        self._install_lock = threading.Lock()

    @property
    def artifacts(self) -> ArtifactCache:
        """The compiled cache: its engine key, and where a delivered artifact goes."""
        return self._context.artifacts

    def engine_report(self) -> EngineReport:
        """What the control plane needs to send this host artifacts its engine loads."""
        settings = self._context.artifacts.settings
        return EngineReport(self.artifacts.engine_key, settings.target, settings.features)

    def install(self, manifest: Manifest, source: Path | Delivered) -> LoadedVersion:
        """Loads and swaps in a version; on failure the serving version stays and this raises.

        ``source`` is a component file or an artifact delivered for this engine (see
        `load_version`).

        Installing the bytes and manifest already serving changes nothing but clears the
        slot's load error: the refused file it recorded has been put back.
        """
        slot = self.slot_for(manifest.name)
        with self._install_lock:
            if _serving(slot, manifest, source):
                slot.clear_load_error()
                return slot.version  # type: ignore[return-value]
            conflict = self._gpio_conflict(manifest)
            if conflict is not None:
                log.error("refused %s: %s", manifest.label, conflict)
                slot.refuse(manifest.version, conflict)
                raise PluginLoadError(manifest.name, manifest.version, conflict)
            try:
                version = load_version(
                    self._context, manifest, source, self._guest_log(manifest.name)
                )
            except PluginLoadError as exc:
                log.error("refused %s: %s", manifest.label, exc.reason)
                if isinstance(exc, SelfCheckFailed):
                    self.health.self_check_failed(manifest.name, manifest.version)
                slot.refuse(manifest.version, exc.reason)
                raise
            with self._lock:
                self._live.add(version)
            # Counted before the swap: whoever sees the new version sees its load counted.
            self._metrics.inc("plugin_loads_total", how=str(version.how))
            slot.swap(version)
            self._prune()
        log.info(
            "%s is serving (sha256 %s, %s in %.0f ms)",
            manifest.label,
            version.sha256[:12],
            version.how.phrase,
            version.load_seconds * 1000,
        )
        return version

    def refuse(self, name: str, version: str, reason: str) -> None:
        """Records a version that never got as far as loading (bad manifest, missing file)."""
        log.error("refused %s %s: %s", name, version, reason)
        self.slot_for(name).refuse(version, reason)

    def remove(self, name: str) -> None:
        with self._lock:
            slot = self._slots.pop(name, None)
        if slot is not None:
            slot.clear()
            log.info("plugin %s removed", name)
            with self._install_lock:
                self._prune()

    def keep_referenced_by(self, source: KeepSource) -> None:
        """Adds ``source`` to what pruning keeps; it is asked before every prune."""
        with self._lock:
            self._keep_sources.append(source)

    def referenced_sha256s(self) -> set[str]:
        """Components this host may run again: every version still alive (serving, or
        finishing calls after a swap) and whatever the keep sources name."""
        with self._lock:
            keep = {version.sha256 for version in self._live}
            sources = list(self._keep_sources)
        keep.update(slot.version.sha256 for slot in self.slots() if slot.version is not None)
        for source in sources:
            keep.update(source())
        return keep

    def slot(self, name: str) -> PluginSlot | None:
        with self._lock:
            return self._slots.get(name)

    def slot_for(self, name: str) -> PluginSlot:
        with self._lock:
            slot = self._slots.get(name)
            if slot is None:
                slot = PluginSlot(
                    name, self._policy, self.events, self._metrics, self._queue_limit, self.health
                )
                self._slots[name] = slot
            return slot

    def slots(self) -> list[PluginSlot]:
        with self._lock:
            return sorted(self._slots.values(), key=lambda slot: slot.name)

    def close(self) -> None:
        for slot in self.slots():
            slot.clear()

    def _gpio_conflict(self, manifest: Manifest) -> str | None:
        """Why ``manifest`` may not drive its output pins: another installed plugin does."""
        wanted = manifest.capabilities.gpio_out_pins
        for slot in self.slots():
            other = slot.version
            if slot.name == manifest.name or other is None:
                continue
            shared = sorted(wanted & other.manifest.capabilities.gpio_out_pins)
            if shared:
                pins = ", ".join(str(pin) for pin in shared)
                plural = "s" if len(shared) > 1 else ""
                return (
                    f"gpio out pin{plural} {pins} already granted to plugin {other.manifest.label}"
                )
        return None

    def _prune(self) -> None:
        """Deletes compiled components nothing references; called under the install lock."""
        if not self._prune_compiled:
            return
        try:
            keep = self.referenced_sha256s()
        except Exception:
            log.exception("not pruning the compiled cache: cannot tell what is still needed")
            return
        try:
            removed = self._context.artifacts.prune(keep)
        except OSError as exc:
            log.warning("cannot prune the compiled cache: %s", exc)
            return
        if removed:
            log.info("pruned %d compiled components no longer referenced", len(removed))

    def _guest_log(self, name: str) -> GuestLog:
        with self._lock:
            guest_log = self._guest_logs.get(name)
            if guest_log is None:
                guest_log = self._guest_logs[name] = GuestLog(name, self.log_tail)
            return guest_log


def _serving(slot: PluginSlot, manifest: Manifest, source: Path | Delivered) -> bool:
    """Whether ``slot`` already serves this manifest with the bytes ``source`` names."""
    current = slot.version
    if current is None or current.manifest != manifest:
        return False
    if isinstance(source, Delivered):
        return source.sha256 == current.sha256
    try:
        return file_sha256(source) == current.sha256
    except OSError:
        return False
