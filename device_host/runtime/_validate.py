"""The load-time check of a compiled component against its manifest and the contract."""

from __future__ import annotations

import wasmtime
from wasmtime.component import Component

from fleet_common.compiler.surface import component_surface
from fleet_common.contract.check import check_surface
from fleet_common.manifest import Manifest


def check_component(
    engine: wasmtime.Engine, component: Component, manifest: Manifest
) -> dict[str, str]:
    """Checks a compiled component's surface against its manifest and the contract.

    Returns its contract exports (compatibility key → export name); raises
    `PluginLoadError`. Runs on every load, delivered artifacts included: the signature says
    who compiled them, this says they still fit what the manifest grants.
    """
    return check_surface(component_surface(engine, component), manifest)
