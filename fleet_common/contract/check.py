"""Refuses a component whose imports or exports do not fit its manifest and the contract.

Pure data: the runtime renders a compiled component's surface (`device_host.runtime`) and
this module compares it with the manifest and the reference signatures.
"""

from __future__ import annotations

from fleet_common.contract.interfaces import (
    ALL_IMPORTS,
    COMPONENTIZE_PY_INIT_EXPORT,
    OPTIONAL_EXPORTS,
    capability_hint,
    compatibility_key,
)
from fleet_common.contract.reference import reference_signatures
from fleet_common.contract.signatures import Functions, Surface
from fleet_common.contract.worlds import WORLDS, granted_imports
from fleet_common.errors import PluginLoadError
from fleet_common.manifest import Manifest

COMPONENT_MAGIC = b"\x00asm\x0d\x00\x01\x00"
CORE_MODULE_MAGIC = b"\x00asm\x01\x00\x00\x00"


def magic_problem(data: bytes) -> str | None:
    """What the bytes are if not a component; wasmtime would parse them as text, misleadingly."""
    if data.startswith(COMPONENT_MAGIC):
        return None
    if data.startswith(CORE_MODULE_MAGIC):
        return "is a core WebAssembly module, not a component (build it with componentize-py)"
    if not data:
        return "the component file is empty"
    return f"is not WebAssembly (starts with {data[:8].hex(' ')})"


def check_surface(surface: Surface, manifest: Manifest) -> dict[str, str]:
    """Raises `PluginLoadError` listing every problem; returns the contract exports present.

    The result maps each export's compatibility key to its name as the component spells it.

    Imports must be WASI (which the host locks down) or contract interfaces the manifest
    grants, with the contract's signatures. Exports must be exactly the world's, with the
    contract's signatures, plus the optional self-check.
    """
    problems = _import_problems(surface.imports, manifest) + _export_problems(
        surface.exports, manifest
    )
    if problems:
        raise PluginLoadError(manifest.name, manifest.version, "; ".join(problems))
    return {
        compatibility_key(name): name
        for name in surface.exports
        if name != COMPONENTIZE_PY_INIT_EXPORT
    }


def _import_problems(imports: dict[str, Functions], manifest: Manifest) -> list[str]:
    reference = reference_signatures()
    provided = {compatibility_key(name) for name in ALL_IMPORTS}
    granted = {compatibility_key(name) for name in granted_imports(manifest)}
    problems = []
    for name, functions in sorted(imports.items()):
        key = compatibility_key(name)
        if name.startswith("wasi:"):
            continue
        if key not in provided:
            problems.append(f"imports {name}, which this host does not provide")
        elif key not in granted:
            problems.append(
                f"imports {name}, which its manifest does not grant "
                f"(that needs {capability_hint(name)})"
            )
        else:
            # Fewer functions than the contract is fine: built against an older minor version.
            problems += _signature_problems("imports", name, functions, reference[key], functions)
    return problems


def _export_problems(exports: dict[str, Functions], manifest: Manifest) -> list[str]:
    reference = reference_signatures()
    spec = WORLDS[manifest.world]
    required = {compatibility_key(name): name for name in spec.exports}
    optional = {compatibility_key(name) for name in OPTIONAL_EXPORTS}
    present = {
        compatibility_key(name): (name, functions)
        for name, functions in exports.items()
        if name != COMPONENTIZE_PY_INIT_EXPORT
    }
    problems = []
    for key, name in sorted(required.items()):
        if key not in present:
            found = ", ".join(sorted(n for n, _ in present.values())) or "nothing"
            problems.append(
                f"does not export {name}, which world {manifest.world} requires "
                f"(it exports {found})"
            )
    for key, (name, functions) in sorted(present.items()):
        if key not in required and key not in optional:
            problems.append(f"exports {name}, which world {manifest.world} does not have")
        else:
            # Every function the host calls must be there; extra ones are never called.
            problems += _signature_problems(
                "exports", name, functions, reference[key], reference[key]
            )
    return problems


def _signature_problems(
    verb: str, name: str, found: Functions, contract: Functions, must_match: Functions
) -> list[str]:
    """Differences between ``found`` and ``contract`` for each function in ``must_match``."""
    problems = []
    for function in sorted(must_match):
        label = f"{name}#{function}" if function else name
        if function not in contract:
            problems.append(f"{verb} {label}, which the contract does not have")
        elif function not in found:
            problems.append(f"does not {verb[:-1]} {label}, which the contract requires")
        elif found[function] != contract[function]:
            problems.append(
                f"{verb} {label} as {found[function]}, but the contract says {contract[function]}"
            )
    return problems
