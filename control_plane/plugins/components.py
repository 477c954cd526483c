"""Checking an uploaded component as a device will, before anyone signs it.

The checks are the device host's own (`device_host.runtime.validate_component`): size,
declared memory against the manifest's cap, and the contract. The compile runs in a child
process, so a web worker never holds a compile's memory or a compiled component.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from device_host.manifest import Manifest
from device_host.runtime import EngineSettings, validate_component

ENGINE_SETTINGS = EngineSettings()
"""Devices' engine settings, so a kept artifact is one a device could load."""


@dataclass(frozen=True)
class ComponentSurface:
    """The contract interfaces a component imports and exports (WASI left out)."""

    imports: list[str]
    exports: list[str]


def inspect_component(data: bytes, manifest: Manifest) -> ComponentSurface:
    """Validates the component against its manifest and the contract (seconds).

    Raises `PluginLoadError` naming every problem, as a device would. Run it outside any
    database transaction: a compile must not hold SQLite's write lock.
    """
    validated = validate_component(
        data, manifest, settings=ENGINE_SETTINGS, artifact_dir=settings.COMPILED_CACHE_DIR
    )
    return ComponentSurface(
        imports=sorted(name for name in validated.surface.imports if not name.startswith("wasi:")),
        exports=sorted(validated.exports.values()),
    )
