"""Compiled components on disk, keyed by content hash and engine key.

Compiling an 18 MB componentize-py component costs seconds (far more on a Pi) and
hundreds of MB; loading its serialized form with ``deserialize_file`` costs milliseconds
and maps shared, file-backed pages. So a device loads the artifact the control plane
compiled for its engine key and signed (`load_delivered`), and compiles (`load`, in a child
process, `fleet_common.compiler.run`) only when it has none and its config allows.

Before anything is compiled, the file's size is checked (`fleet_common.components`) and
its footprint (what one instance will allocate) is read and checked against the
manifest's memory cap, so a component that can never fit costs no compile.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import wasmtime
from wasmtime.component import Component

from fleet_common.compiler.engines import engine_key
from fleet_common.compiler.run import CompileFailed, CompileJob, compile_in_child
from fleet_common.compiler.settings import EngineSettings
from fleet_common.components import inspect_file, refuse_over_budget
from fleet_common.errors import PluginLoadError
from fleet_common.footprint import Footprint

log = logging.getLogger(__name__)

_footprints: weakref.WeakKeyDictionary[Component, Footprint] = weakref.WeakKeyDictionary()


class LoadHow(StrEnum):
    """Where a loaded component's machine code came from."""

    DELIVERED = "delivered"
    """An artifact the control plane compiled for this engine key and signed."""
    CACHED = "cached"
    """This host's own earlier compile."""
    COMPILED = "compiled"
    """Compiled here, now."""

    @property
    def phrase(self) -> str:
        """How logs and events say it."""
        return _PHRASES[self]


_PHRASES = {
    LoadHow.DELIVERED: "delivered compiled artifact",
    LoadHow.CACHED: "compiled cache",
    LoadHow.COMPILED: "fresh compile",
}


@dataclass(frozen=True)
class Delivered:
    """A component known only by its signed facts; its artifact is in the cache already."""

    sha256: str
    size: int
    footprint: Footprint


@dataclass(frozen=True)
class CompiledComponent:
    """A component ready to instantiate, and where it came from."""

    component: Component
    sha256: str
    size: int
    how: LoadHow
    artifact: Path
    footprint: Footprint


def artifact_name(sha256: str, key: str) -> str:
    """The file name of a component's artifact for an engine key: one name wherever it is made."""
    return f"{sha256}-{key[:16]}.cwasm"


def footprint_of(component: Component) -> Footprint:
    """What one instance of a component loaded by an `ArtifactCache` allocates.

    wasmtime does not expose a component's memories and tables, and every Store's limits
    need them, so the cache keeps the footprint it read next to the component it made.
    """
    return _footprints[component]


class ArtifactCache:
    """Compiles components on a cache miss and loads serialized ones on a hit."""

    def __init__(self, directory: Path, engine: wasmtime.Engine, settings: EngineSettings) -> None:
        self._directory = directory
        self._engine = engine
        self.settings = settings
        self.engine_key = engine_key(engine)
        """What artifacts this cache's engine loads; devices report it to the control plane."""
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
        if artifact.exists():
            try:
                return self._deserialize(artifact, sha256, size, LoadHow.CACHED, footprint)
            except wasmtime.WasmtimeError as exc:
                log.warning("discarding unreadable compiled artifact %s: %s", artifact, exc)
                artifact.unlink(missing_ok=True)
        try:
            with self._compile_lock:
                compiled = compile_in_child(CompileJob(wasm_path, sha256, artifact, self.settings))
        except CompileFailed as exc:
            reason = exc.reason if exc.invalid else f"cannot be compiled: {exc.reason}"
            raise PluginLoadError(plugin, version, reason) from None
        if compiled.engine_key != self.engine_key:
            artifact.unlink(missing_ok=True)
            raise PluginLoadError(
                plugin,
                version,
                f"the compiler's engine key {compiled.engine_key[:16]} is not "
                f"this host's {self.engine_key[:16]} (a different wasmtime on the path?)",
            )
        return self._deserialize(artifact, sha256, size, LoadHow.COMPILED, footprint)

    def load_delivered(
        self,
        sha256: str,
        size: int,
        footprint: Footprint,
        *,
        plugin: str,
        version: str,
        memory_mib: int | None = None,
    ) -> CompiledComponent:
        """Loads the artifact an agent put at ``artifact_path(sha256)`` after verifying it.

        Only bytes covered by a signature this device trusts may get here: deserializing is
        loading native code outside the sandbox. The footprint comes from the same signed
        statement, since the component itself is not on the device. An artifact wasmtime
        refuses (another engine, damaged) is deleted and raises `PluginLoadError`.
        """
        if memory_mib is not None:
            refuse_over_budget(footprint, memory_mib, plugin, version)
        artifact = self.artifact_path(sha256)
        try:
            return self._deserialize(artifact, sha256, size, LoadHow.DELIVERED, footprint)
        except (wasmtime.WasmtimeError, OSError) as exc:
            artifact.unlink(missing_ok=True)
            raise PluginLoadError(
                plugin, version, f"the compiled artifact does not load here: {exc}"
            ) from None

    def _deserialize(
        self, artifact: Path, sha256: str, size: int, how: LoadHow, footprint: Footprint
    ) -> CompiledComponent:
        if not artifact.is_file():
            raise FileNotFoundError(f"no compiled artifact at {artifact}")
        _read_into_page_cache(artifact)
        component = Component.deserialize_file(self._engine, str(artifact))
        _footprints[component] = footprint
        return CompiledComponent(component, sha256, size, how, artifact, footprint)

    def artifact_path(self, sha256: str) -> Path:
        return self._directory / artifact_name(sha256, self.engine_key)

    def prune(self, keep: set[str]) -> list[Path]:
        """Deletes artifacts not in ``keep`` (sha256s) and all of other engines; returns them.

        Only files named as this cache names them are touched, so temporary files of a
        compile in progress stay. The caller decides what is kept: a directory shared
        with other hosts must not be pruned, since this one cannot know what they use.
        """
        removed = []
        for artifact in self._directory.glob("*.cwasm"):
            sha256, _, key = artifact.stem.partition("-")
            if len(sha256) != 64 or not key or artifact.name.startswith("."):
                continue
            if sha256 in keep and key == self.engine_key[:16]:
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
