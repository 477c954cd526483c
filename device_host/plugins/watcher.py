"""Watches a plugins directory and hot-swaps what changes in it.

Each plugin is a folder with ``manifest.toml`` and its component. The directory is
polled rather than watched through inotify: that works on every filesystem a Pi boots
from, and a change is only loaded once its files have stopped changing for one poll, so
a half-written component is never picked up.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

from device_host.plugins.manager import PluginManager
from fleet_common.errors import ManifestError, PluginLoadError
from fleet_common.manifest import load_manifest
from fleet_common.wire.events import EventKind

log = logging.getLogger(__name__)

Stamp = tuple[tuple[int, int], tuple[int, int] | None]


class PluginDirectoryWatcher:
    def __init__(self, directory: Path, manager: PluginManager, poll_s: float = 1.0) -> None:
        self._directory = directory
        self._manager = manager
        self._poll_s = poll_s
        self._seen: dict[Path, Stamp] = {}
        self._loaded: dict[Path, Stamp] = {}
        self._names: dict[Path, str] = {}
        self._problems: dict[str, str] = {}
        """Folders that are not a plugin at all (no valid manifest): no slot, no plugin."""
        self._stop = threading.Event()
        self._first_pass_done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plugin-watcher", daemon=True)

    def start(self) -> None:
        """Starts watching; the first pass loads every plugin present, in the background.

        The server answers meanwhile: a first boot may compile for minutes on a Pi.
        """
        self._thread.start()

    @property
    def caught_up(self) -> bool:
        """Whether the first pass over the directory has finished."""
        return self._first_pass_done.is_set()

    def status(self) -> dict[str, object]:
        """What /healthz shows about the directory itself, apart from the plugins in it."""
        return {"directory": str(self._directory), "problems": dict(self._problems)}

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def scan(self, *, settle: bool = True) -> None:
        """One pass: installs folders that changed and have settled, removes deleted ones."""
        present = set()
        for manifest_path in sorted(self._directory.glob("*/manifest.toml")):
            folder = manifest_path.parent
            present.add(folder)
            stamp = _stamp(folder, manifest_path)
            if stamp is None:
                continue
            changed_since_last_poll = self._seen.get(folder) != stamp
            self._seen[folder] = stamp
            if (settle and changed_since_last_poll) or self._loaded.get(folder) == stamp:
                continue
            self._loaded[folder] = stamp
            self._install(folder, manifest_path)
        for folder in set(self._names) - present:
            self._manager.remove(self._names.pop(folder))
        for folder in set(self._seen) - present:
            self._seen.pop(folder, None)
            self._loaded.pop(folder, None)
            self._problems.pop(folder.name, None)

    def _install(self, folder: Path, manifest_path: Path) -> None:
        try:
            manifest = load_manifest(manifest_path)
        except ManifestError as exc:
            reason = str(exc)
            self._problems[folder.name] = reason
            log.error("plugin folder %s refused: %s", folder, reason)
            self._manager.events.add(folder.name, "-", EventKind.REFUSED, f"folder: {reason}")
            return
        self._problems.pop(folder.name, None)
        self._names[folder] = manifest.name
        wasm = folder / manifest.component
        if not wasm.is_file():
            hint = f"build it with: device-host build {folder}"
            self._manager.refuse(manifest.name, manifest.version, f"{wasm} does not exist ({hint})")
            return
        with contextlib.suppress(PluginLoadError):  # recorded in the slot; the old version stays
            self._manager.install(manifest, wasm)

    def _run(self) -> None:
        self._scan_logging_failures(settle=False)
        self._first_pass_done.set()
        while not self._stop.wait(self._poll_s):
            self._scan_logging_failures(settle=True)

    def _scan_logging_failures(self, *, settle: bool) -> None:
        try:
            self.scan(settle=settle)
        except Exception:
            log.exception("plugin directory scan failed")


def _stamp(folder: Path, manifest_path: Path) -> Stamp | None:
    try:
        manifest_stat = manifest_path.stat()
    except FileNotFoundError:
        return None
    wasm_stats = [
        (entry.stat().st_mtime_ns, entry.stat().st_size) for entry in sorted(folder.glob("*.wasm"))
    ]
    wasm_stamp = (
        (sum(s[0] for s in wasm_stats), sum(s[1] for s in wasm_stats)) if wasm_stats else None
    )
    return (manifest_stat.st_mtime_ns, manifest_stat.st_size), wasm_stamp
