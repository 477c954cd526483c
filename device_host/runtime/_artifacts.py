"""Compiled components on disk, keyed by content hash and engine fingerprint.

Compiling an 18 MB componentize-py component costs seconds (far more on a Pi) and
hundreds of MB; loading its serialized form with ``deserialize_file`` costs milliseconds
and maps shared, file-backed pages. So every component is compiled once per engine, in a
child process (`device_host.runtime._compile`) so that the compile's memory leaves with it.

Before anything is compiled, the file's size is checked against `MAX_COMPONENT_BYTES` and
its footprint (what one instance will allocate) is read and checked against the
manifest's memory cap, so a component that can never fit costs no compile.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import wasmtime
from wasmtime.component import Component

from device_host.contract.check import COMPONENT_MAGIC, magic_problem
from device_host.errors import PluginLoadError
from device_host.runtime._compile import CompileFailed, CompileJob, compile_in_child
from device_host.runtime._engine import EngineSettings
from device_host.runtime._footprint import Footprint, FootprintError, read_footprint
from device_host.runtime._limits import budget_problem
from device_host.storage.digest import file_sha256

log = logging.getLogger(__name__)

MAX_COMPONENT_BYTES = 64 << 20
"""The largest component a device loads and a control plane accepts (ours are 18 MB)."""

_footprints: weakref.WeakKeyDictionary[Component, Footprint] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class CompiledComponent:
    """A component ready to instantiate, and where it came from."""

    component: Component
    sha256: str
    size: int
    from_cache: bool
    artifact: Path
    footprint: Footprint


def size_problem(size: int) -> str:
    return f"the component is {size} bytes, more than the {MAX_COMPONENT_BYTES >> 20} MiB limit"


def artifact_name(sha256: str, settings: EngineSettings) -> str:
    """The file name of a component's artifact for an engine: one name wherever it is made."""
    return f"{sha256}-{settings.fingerprint()}.cwasm"


def footprint_of(component: Component) -> Footprint:
    """What one instance of a component loaded by an `ArtifactCache` allocates.

    wasmtime does not expose a component's memories and tables, and every Store's limits
    need them, so the cache keeps the footprint it read next to the component it made.
    """
    return _footprints[component]


def inspect_file(path: Path, plugin: str, version: str) -> tuple[Footprint, str, int]:
    """Footprint, sha256 and size of a component file, refused early if it cannot be one.

    The file is mapped, not read: its pages stay in the page cache, not in the heap.
    """
    try:
        size = path.stat().st_size
        if size > MAX_COMPONENT_BYTES:
            raise PluginLoadError(plugin, version, size_problem(size))
        with path.open("rb") as handle:
            head = handle.read(len(COMPONENT_MAGIC))
            problem = magic_problem(head)
            if problem is not None:
                raise PluginLoadError(plugin, version, problem)
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                footprint = read_footprint(mapped)
        return footprint, file_sha256(path), size
    except OSError as exc:
        raise PluginLoadError(plugin, version, f"cannot read {path}: {exc}") from None
    except FootprintError as exc:
        raise PluginLoadError(plugin, version, f"not a valid component: {exc}") from None


def refuse_over_budget(footprint: Footprint, memory_mib: int, plugin: str, version: str) -> None:
    problem = budget_problem(footprint, memory_mib)
    if problem is not None:
        raise PluginLoadError(plugin, version, problem)


class ArtifactCache:
    """Compiles components on a cache miss and loads serialized ones on a hit."""

    def __init__(self, directory: Path, engine: wasmtime.Engine, settings: EngineSettings) -> None:
        self._directory = directory
        self._engine = engine
        self._settings = settings
        self._fingerprint = settings.fingerprint()
        self._compile_lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)

    def load(
        self, wasm_path: Path, *, plugin: str, version: str, memory_mib: int | None = None
    ) -> CompiledComponent:
        """Returns the compiled component for the bytes at ``wasm_path``.

        Bad bytes raise `PluginLoadError` that says what the file is instead; so does a
        component whose declared memories and tables exceed ``memory_mib``, before it is
        compiled. Compiles run one at a time (two would double the peak on a small device),
        each in a child process.
        """
        footprint, sha256, size = inspect_file(wasm_path, plugin, version)
        if memory_mib is not None:
            refuse_over_budget(footprint, memory_mib, plugin, version)
        artifact = self.artifact_path(sha256)
        from_cache = artifact.exists()
        if from_cache:
            try:
                return self._deserialize(artifact, sha256, size, True, footprint)
            except wasmtime.WasmtimeError as exc:
                log.warning("discarding unreadable compiled artifact %s: %s", artifact, exc)
                artifact.unlink(missing_ok=True)
        try:
            with self._compile_lock:
                compile_in_child(CompileJob(wasm_path, sha256, artifact, self._settings))
        except CompileFailed as exc:
            reason = exc.reason if exc.invalid else f"cannot be compiled: {exc.reason}"
            raise PluginLoadError(plugin, version, reason) from None
        return self._deserialize(artifact, sha256, size, False, footprint)

    def _deserialize(
        self, artifact: Path, sha256: str, size: int, from_cache: bool, footprint: Footprint
    ) -> CompiledComponent:
        _read_into_page_cache(artifact)
        component = Component.deserialize_file(self._engine, str(artifact))
        _footprints[component] = footprint
        return CompiledComponent(component, sha256, size, from_cache, artifact, footprint)

    def artifact_path(self, sha256: str) -> Path:
        return self._directory / artifact_name(sha256, self._settings)

    def prune(self, keep: set[str]) -> list[Path]:
        """Deletes artifacts not in ``keep`` (sha256s) and all of other engines; returns them.

        Only files named as this cache names them are touched, so temporary files of a
        compile in progress stay. The caller decides what is kept: a directory shared
        with other hosts must not be pruned, since this one cannot know what they use.
        """
        removed = []
        for artifact in self._directory.glob("*.cwasm"):
            sha256, _, fingerprint = artifact.stem.partition("-")
            if len(sha256) != 64 or not fingerprint or artifact.name.startswith("."):
                continue
            if sha256 in keep and fingerprint == self._fingerprint:
                continue
            try:
                artifact.unlink()
            except FileNotFoundError:
                continue
            removed.append(artifact)
        return removed


def _read_into_page_cache(artifact: Path) -> None:
    """Reads the artifact once, off the request path, so its pages are in the page cache.

    ``deserialize_file`` maps the file lazily: without this, the first call into each new
    instance faults the code in from disk (seconds from a Pi's SD card after the kernel
    evicted it) inside the plugin's time budget, and times out for the host's slowness.
    """
    with contextlib.suppress(OSError), artifact.open("rb") as handle:
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_WILLNEED)
        while handle.read(1 << 20):
            pass
