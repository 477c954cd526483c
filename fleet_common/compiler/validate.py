"""Everything a device will check of a component, done before anyone signs it.

Size, footprint against the manifest's memory cap (no compile for what can never fit), then
a compile in a child process whose surface is checked against the manifest and the
contract. The same compile leaves the artifact for the settings' engine, so validating
an upload also produces its first device class's artifact.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleet_common.compiler.run import (
    Compiled,
    CompileFailed,
    CompileJob,
    Interpreter,
    compile_in_child,
)
from fleet_common.compiler.settings import EngineSettings
from fleet_common.components import inspect_file, refuse_over_budget
from fleet_common.contract.check import check_surface
from fleet_common.contract.signatures import Surface
from fleet_common.digest import file_sha256
from fleet_common.errors import PluginLoadError
from fleet_common.footprint import Footprint
from fleet_common.manifest import Manifest


@dataclass(frozen=True)
class Validated:
    """What an accepted component is, and the artifact its validation compile left."""

    surface: Surface
    exports: dict[str, str]
    """Compatibility key of each contract export mapped to its name in the component."""
    footprint: Footprint
    sha256: str
    size: int
    compiled: Compiled
    """What the compile reported: its engine key, the artifact it wrote, what it cost."""


def validate_file(
    source: Path,
    manifest: Manifest,
    settings: EngineSettings,
    artifact: Path | None = None,
    interpreter: Interpreter | None = None,
) -> Validated:
    """Checks the component at ``source``; raises `PluginLoadError` naming each problem.

    Takes seconds for an 18 MB component (minutes emulated): run it in a job, never on a
    request path. With ``artifact``, the compiled artifact is written there atomically.
    """
    name, version = manifest.name, manifest.version
    footprint, sha256, size = inspect_file(source, name, version)
    refuse_over_budget(footprint, manifest.limits.memory_mib, name, version)
    job = CompileJob(source, sha256, artifact, settings, interpreter or Interpreter())
    try:
        compiled = compile_in_child(job)
    except CompileFailed as exc:
        reason = exc.reason if exc.invalid else f"cannot be compiled: {exc.reason}"
        raise PluginLoadError(name, version, reason) from None
    return Validated(
        surface=compiled.surface,
        exports=check_surface(compiled.surface, manifest),
        footprint=footprint,
        sha256=sha256,
        size=size,
        compiled=compiled,
    )


def surface_of_file(path: Path) -> Surface:
    """What the component at ``path`` imports and exports, compiled natively in a child.

    For development tools (the reference signatures); raises `CompileFailed`.
    """
    return compile_in_child(CompileJob(path, file_sha256(path), None, EngineSettings())).surface
