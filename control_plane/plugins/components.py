"""Compiling an uploaded component and checking it as a device will, before anyone signs it.

The checks are the device host's own (`device_host.contract`); this module only compiles,
once per process engine, and reports what the component really imports and exports.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import wasmtime
from django.conf import settings
from wasmtime.component import Component

from device_host.contract import check_component, magic_problem
from device_host.contract.signatures import component_surface
from device_host.errors import PluginLoadError
from device_host.manifest import Manifest
from device_host.runtime import ArtifactCache, EngineSettings, create_engine

ENGINE_SETTINGS = EngineSettings()


@dataclass(frozen=True)
class ComponentSurface:
    """The contract interfaces a component imports and exports (WASI left out)."""

    imports: list[str]
    exports: list[str]


@cache
def engine() -> wasmtime.Engine:
    """The process's one Engine, configured as devices configure theirs."""
    return create_engine(ENGINE_SETTINGS)


def inspect_component(data: bytes, manifest: Manifest) -> ComponentSurface:
    """Compiles (seconds) and checks the component against its manifest and the contract.

    Raises `PluginLoadError` naming every problem, as a device would. Run it outside any
    database transaction: a compile must not hold SQLite's write lock.
    """
    problem = magic_problem(data)
    if problem is not None:
        raise PluginLoadError(manifest.name, manifest.version, problem)
    component = _compile(data, manifest)
    exports = check_component(engine(), component, manifest)
    imports, _ = component_surface(engine(), component)
    return ComponentSurface(
        imports=sorted(name for name in imports if not name.startswith("wasi:")),
        exports=sorted(exports.values()),
    )


def _compile(data: bytes, manifest: Manifest) -> Component:
    """Compiles through the device host's compiled cache: niced, and kept if configured."""
    keep = settings.COMPILED_CACHE_DIR
    with tempfile.TemporaryDirectory(prefix="cp-compile-") as scratch:
        source = Path(scratch) / "component.wasm"
        source.write_bytes(data)
        cache_dir = Path(keep) if keep else Path(scratch) / "compiled"
        cache = ArtifactCache(cache_dir, engine(), ENGINE_SETTINGS)
        compiled = cache.load(source, plugin=manifest.name, version=manifest.version)
        return compiled.component
