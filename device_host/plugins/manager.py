"""All plugin slots of this host, and installing a version into one."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from device_host.errors import PluginLoadError
from device_host.manifest import Manifest
from device_host.metrics import Metrics
from device_host.plugins.events import EventLog
from device_host.plugins.quarantine import QuarantinePolicy
from device_host.plugins.slot import PluginSlot
from device_host.runtime import GuestLog, LoadContext, LoadedVersion, load_version
from device_host.storage.digest import file_sha256

log = logging.getLogger(__name__)


class PluginManager:
    """Loads versions off the request path and swaps them into their slots.

    Loads run one at a time: compiling a component takes hundreds of MB, and a device
    must not do two at once.
    """

    def __init__(
        self, context: LoadContext, policy: QuarantinePolicy, events: EventLog, metrics: Metrics
    ) -> None:
        self._context = context
        self._policy = policy
        self.events = events
        self._metrics = metrics
        self._slots: dict[str, PluginSlot] = {}
        self._guest_logs: dict[str, GuestLog] = {}
        self._lock = threading.Lock()
        self._install_lock = threading.Lock()

    def install(self, manifest: Manifest, wasm_path: Path) -> LoadedVersion:
        """Loads and swaps in a version; on failure the serving version stays and this raises."""
        slot = self.slot_for(manifest.name)
        with self._install_lock:
            current = slot.version
            if (
                current is not None
                and current.manifest == manifest
                and _same_bytes(current, wasm_path)
            ):
                return current
            try:
                version = load_version(
                    self._context, manifest, wasm_path, self._guest_log(manifest.name)
                )
            except PluginLoadError as exc:
                log.error("refused %s: %s", manifest.label, exc.reason)
                slot.refuse(manifest.version, exc.reason)
                raise
            slot.swap(version)
        log.info(
            "%s is serving (sha256 %s, %s in %.0f ms)",
            manifest.label,
            version.sha256[:12],
            "from compiled cache" if version.from_cache else "compiled",
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

    def slot(self, name: str) -> PluginSlot | None:
        with self._lock:
            return self._slots.get(name)

    def slot_for(self, name: str) -> PluginSlot:
        with self._lock:
            slot = self._slots.get(name)
            if slot is None:
                slot = PluginSlot(name, self._policy, self.events, self._metrics)
                self._slots[name] = slot
            return slot

    def slots(self) -> list[PluginSlot]:
        with self._lock:
            return sorted(self._slots.values(), key=lambda slot: slot.name)

    def close(self) -> None:
        for slot in self.slots():
            slot.clear()

    def _guest_log(self, name: str) -> GuestLog:
        with self._lock:
            return self._guest_logs.setdefault(name, GuestLog(name))


def _same_bytes(version: LoadedVersion, wasm_path: Path) -> bool:
    try:
        return file_sha256(wasm_path) == version.sha256
    except OSError:
        return False
