"""Builds a plugin folder (``app.py`` + ``manifest.toml``) into a WebAssembly component.

The world is generated from the manifest, so the component imports exactly what the
manifest grants. componentize-py takes seconds per build, so outputs are cached by a hash
of everything that can change them.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from device_host.errors import PluginBuildError
from fleet_common.atomic import atomic_copy
from fleet_common.contract.wit import plugin_world, stage_wit, wit_dir
from fleet_common.manifest import Manifest, load_manifest

APP_MODULE = "app"
_GUEST_PATH = re.compile(r'"/\d+/([^"]+)"')


@dataclass(frozen=True)
class BuildResult:
    """Where the component went and whether the build cache supplied it."""

    manifest: Manifest
    output: Path
    sha256: str
    cached: bool


def default_build_cache() -> Path:
    """``$PI_FLEET_BUILD_CACHE``, else the user's cache directory."""
    if override := os.environ.get("PI_FLEET_BUILD_CACHE"):
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pi-fleet" / "builds"


def build_plugin(
    plugin_dir: Path, *, output: Path | None = None, cache_dir: Path | None = None
) -> BuildResult:
    """Builds ``plugin_dir`` and writes the component beside it (or to ``output``).

    Raises `PluginBuildError` with the file and line of a Python error in the plugin.
    """
    manifest = load_manifest(plugin_dir / "manifest.toml")
    app = plugin_dir / f"{APP_MODULE}.py"
    if not app.is_file():
        raise PluginBuildError(f"{plugin_dir}: no {APP_MODULE}.py")
    world = plugin_world(manifest, self_check=_defines_self_check(app))
    key = _build_key(plugin_dir, world)
    cache = (cache_dir or default_build_cache()) / f"{key}.wasm"
    output = output or plugin_dir / manifest.component
    cached = cache.is_file()
    if not cached:
        cache.parent.mkdir(parents=True, exist_ok=True)
        _componentize(plugin_dir, world, cache)
    atomic_copy(cache, output)
    return BuildResult(manifest, output, hashlib.sha256(output.read_bytes()).hexdigest(), cached)


def _defines_self_check(app: Path) -> bool:
    """A plugin opts into the self-check export by defining a top-level ``SelfCheck`` class."""
    try:
        tree = ast.parse(app.read_bytes(), filename=str(app))
    except SyntaxError:
        return False  # componentize-py reports it, with the guest's own Python version
    return any(isinstance(node, ast.ClassDef) and node.name == "SelfCheck" for node in tree.body)


def _build_key(plugin_dir: Path, world: str) -> str:
    digest = hashlib.sha256()
    digest.update(metadata.version("componentize-py").encode())
    digest.update(world.encode())
    for root in (plugin_dir, wit_dir()):
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in {".py", ".wit", ".toml"}:
                digest.update(str(path.relative_to(root)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _componentize(plugin_dir: Path, world: str, destination: Path) -> None:
    componentize_py = shutil.which("componentize-py") or str(
        Path(sys.executable).with_name("componentize-py")
    )
    with tempfile.TemporaryDirectory(prefix="plugin-build-") as tmp:
        wit = stage_wit(Path(tmp) / "wit", world)
        staged = Path(tmp) / "out.wasm"
        command = [
            componentize_py,
            "-d",
            str(wit),
            "-w",
            "plugin",
            "componentize",
            APP_MODULE,
            "-p",
            str(plugin_dir),
            "-o",
            str(staged),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except FileNotFoundError:
            raise PluginBuildError(
                "componentize-py is not installed (pip install pi-fleet[dev])"
            ) from None
        if done.returncode != 0:
            raise PluginBuildError(_explain_failure(plugin_dir, done.stderr))
        atomic_copy(staged, destination)


def _explain_failure(plugin_dir: Path, stderr: str) -> str:
    """Keeps the Python part of componentize-py's report and points it at the real file."""
    text = stderr.split("AssertionError:", 1)[-1].split("Stack backtrace:", 1)[0]
    text = text.split("\n\nCaused by:", 1)[0].strip() or stderr.strip()
    return _GUEST_PATH.sub(lambda m: f'"{plugin_dir / m.group(1)}"', text)
