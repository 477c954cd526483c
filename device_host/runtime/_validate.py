"""The checks a component must pass before it runs anywhere: size, footprint, contract.

The device host runs them while loading (`check_component` on the compiled component);
the control plane runs `validate_component` on an upload, which compiles in a child
process so a web worker never holds a compile's memory or a compiled component.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import wasmtime
from wasmtime.component import Component

from device_host.contract.check import check_surface
from device_host.contract.signatures import Surface
from device_host.errors import PluginLoadError
from device_host.manifest import Manifest
from device_host.runtime._artifacts import (
    MAX_COMPONENT_BYTES,
    artifact_name,
    inspect_file,
    refuse_over_budget,
    size_problem,
)
from device_host.runtime._compile import CompileFailed, CompileJob, compile_in_child
from device_host.runtime._engine import EngineSettings
from device_host.runtime._footprint import Footprint
from device_host.runtime._surface import component_surface
from device_host.storage.digest import file_sha256


@dataclass(frozen=True)
class Validated:
    """What an accepted component is: its surface, its contract exports, its footprint."""

    surface: Surface
    exports: dict[str, str]
    """Compatibility key of each contract export mapped to its name in the component."""
    footprint: Footprint


def check_component(
    engine: wasmtime.Engine, component: Component, manifest: Manifest
) -> dict[str, str]:
    """Checks a compiled component's surface against its manifest and the contract.

    Returns its contract exports (see `Validated.exports`); raises `PluginLoadError`.
    """
    return check_surface(component_surface(engine, component), manifest)


def surface_of_file(path: Path) -> Surface:
    """What the component at ``path`` imports and exports, compiled in a child process.

    For development tools (the reference signatures); raises `CompileFailed`.
    """
    return compile_in_child(CompileJob(path, file_sha256(path), None, EngineSettings()))


def validate_component(
    data: bytes,
    manifest: Manifest,
    *,
    settings: EngineSettings | None = None,
    artifact_dir: Path | None = None,
) -> Validated:
    """Everything a device will check, done in a child process before a version is accepted.

    Takes seconds for an 18 MB component, so run it off any request path that must
    answer fast. With ``artifact_dir`` the compiled artifact is kept there, named as a
    device's `ArtifactCache` names it. Raises `PluginLoadError` naming each problem.
    """
    name, version = manifest.name, manifest.version
    if len(data) > MAX_COMPONENT_BYTES:
        raise PluginLoadError(name, version, size_problem(len(data)))
    settings = settings or EngineSettings()
    with tempfile.TemporaryDirectory(prefix="validate-") as scratch:
        source = Path(scratch) / "component.wasm"
        source.write_bytes(data)
        footprint, sha256, _size = inspect_file(source, name, version)
        refuse_over_budget(footprint, manifest.limits.memory_mib, name, version)
        artifact = None
        if artifact_dir is not None:
            artifact_dir.mkdir(parents=True, exist_ok=True)
            artifact = artifact_dir / artifact_name(sha256, settings)
        try:
            surface = compile_in_child(CompileJob(source, sha256, artifact, settings))
        except CompileFailed as exc:
            reason = exc.reason if exc.invalid else f"cannot be compiled: {exc.reason}"
            raise PluginLoadError(name, version, reason) from None
    return Validated(surface, check_surface(surface, manifest), footprint)
