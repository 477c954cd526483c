"""The host-plugin contract: interfaces, worlds, reference signatures, the load-time check."""

from device_host.contract.check import check_component, magic_problem, validate_component
from device_host.contract.interfaces import WORLD_SPECS, WorldSpec, granted_imports
from device_host.contract.wit import plugin_world, stage_wit, wit_dir

__all__ = [
    "WORLD_SPECS",
    "WorldSpec",
    "check_component",
    "granted_imports",
    "magic_problem",
    "plugin_world",
    "stage_wit",
    "validate_component",
    "wit_dir",
]
