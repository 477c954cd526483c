"""The WIT files of the contract, and the per-plugin world a build targets."""

from __future__ import annotations

import shutil
from pathlib import Path

from fleet_common.contract.interfaces import SELF_CHECK
from fleet_common.contract.worlds import WORLDS, granted_imports
from fleet_common.manifest import Manifest

_PACKAGE_DIRS = ("fleet", "demo")


def wit_dir() -> Path:
    """Where the contract's WIT lives: inside the installed wheel, or at the repository root."""
    packaged = Path(__file__).parent / "wit"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "wit"


def plugin_world(manifest: Manifest, *, self_check: bool) -> str:
    """WIT for a world holding exactly the imports this manifest grants.

    Granting is what makes an import appear: a plugin built this way imports only the
    interfaces its manifest names, so the host can refuse any component that imports more.
    """
    spec = WORLDS[manifest.world]
    lines = ["package local:plugin;", "", "world plugin {", f"    include {spec.wit_name};"]
    lines += [
        f"    import {name};" for name in sorted(granted_imports(manifest) - spec.base_imports)
    ]
    if self_check:
        lines.append(f"    export {SELF_CHECK};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def stage_wit(target: Path, world_source: str) -> Path:
    """Lays out ``target`` as a WIT package: ``world_source`` at the root, ours as deps."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "plugin.wit").write_text(world_source, encoding="utf-8")
    for package in _PACKAGE_DIRS:
        shutil.copytree(wit_dir() / package, target / "deps" / package, dirs_exist_ok=True)
    return target
