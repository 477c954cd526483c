"""Compiled components on disk, keyed by content hash and engine fingerprint.

Compiling an 18 MB componentize-py component costs seconds (far more on a Pi) and
hundreds of MB; loading its serialized form with ``deserialize_file`` costs milliseconds
and maps shared, file-backed pages. So every component is compiled once per engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import wasmtime
from wasmtime.component import Component

from device_host.contract import magic_problem
from device_host.contract.check import COMPONENT_MAGIC
from device_host.errors import PluginLoadError
from device_host.runtime.engine import EngineSettings
from device_host.storage.atomic import atomic_write_bytes
from device_host.storage.digest import file_sha256

log = logging.getLogger(__name__)

COMPILE_NICENESS = 10


@dataclass(frozen=True)
class CompiledComponent:
    """A component ready to instantiate, and where it came from."""

    component: Component
    sha256: str
    size: int
    from_cache: bool
    artifact: Path


class ArtifactCache:
    """Compiles components on a cache miss and loads serialized ones on a hit."""

    def __init__(self, directory: Path, engine: wasmtime.Engine, settings: EngineSettings) -> None:
        self._directory = directory
        self._engine = engine
        self._fingerprint = settings.fingerprint()
        self._compile_lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)

    def load(self, wasm_path: Path, *, plugin: str, version: str) -> CompiledComponent:
        """Returns the compiled component for the bytes at ``wasm_path``.

        Bad bytes raise `PluginLoadError` that says what the file is instead. Compiles are
        serialized: two at once would double the peak memory on a small device.
        """
        try:
            with wasm_path.open("rb") as handle:
                head = handle.read(len(COMPONENT_MAGIC))
            sha256, size = file_sha256(wasm_path), wasm_path.stat().st_size
        except OSError as exc:
            raise PluginLoadError(plugin, version, f"cannot read {wasm_path}: {exc}") from None
        problem = magic_problem(head)
        if problem is not None:
            raise PluginLoadError(plugin, version, problem)
        artifact = self.artifact_path(sha256)
        if artifact.exists():
            try:
                component = Component.deserialize_file(self._engine, str(artifact))
                return CompiledComponent(component, sha256, size, True, artifact)
            except wasmtime.WasmtimeError as exc:
                log.warning("discarding unreadable compiled artifact %s: %s", artifact, exc)
                artifact.unlink(missing_ok=True)
        data = wasm_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise PluginLoadError(plugin, version, f"{wasm_path} changed while it was being loaded")
        with self._compile_lock:
            try:
                serialized = _compile_in_background(self._engine, data)
            except wasmtime.WasmtimeError as exc:
                reason = f"not a valid component: {_first_line(exc)}"
                raise PluginLoadError(plugin, version, reason) from None
            atomic_write_bytes(artifact, serialized)
            del serialized, data
        component = Component.deserialize_file(self._engine, str(artifact))
        return CompiledComponent(component, sha256, size, False, artifact)

    def artifact_path(self, sha256: str) -> Path:
        return self._directory / f"{sha256}-{self._fingerprint}.cwasm"

    def prune(self, keep: set[str]) -> list[Path]:
        """Deletes artifacts of components no longer in ``keep`` (sha256s); returns what went."""
        removed = []
        for artifact in self._directory.glob("*.cwasm"):
            sha256, _, fingerprint = artifact.stem.partition("-")
            if sha256 not in keep or fingerprint != self._fingerprint:
                artifact.unlink(missing_ok=True)
                removed.append(artifact)
        return removed


def _compile_in_background(engine: wasmtime.Engine, data: bytes) -> bytes:
    """Compiles on a low-priority thread, so requests keep their CPU while a new version builds.

    wasmtime's compile workers are created by the first thread that compiles and inherit
    its priority; every compile in the host comes through here.
    """
    outcome: list[bytes | BaseException] = []

    def compile_niced() -> None:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), COMPILE_NICENESS)
        try:
            outcome.append(bytes(Component(engine, data).serialize()))
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append(exc)

    worker = threading.Thread(target=compile_niced, name="component-compile")
    worker.start()
    worker.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = next((line for line in lines[1:] if not line.startswith("Caused by")), "")
    return f"{lines[0]} ({detail})" if detail and lines else (lines[0] if lines else repr(exc))
