"""Plugins for the benchmarks: copied, edited into variants, built and compiled ahead."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from harness._paths import COMPILED, EXAMPLE_PLUGINS, TEST_PLUGINS, WORK
from tests.support import place_plugin  # noqa: F401 - re-exported for the benchmarks


def built_plugin(
    source: str,
    *,
    label: str | None = None,
    replace: dict[str, str] | None = None,
    name: str | None = None,
    version: str | None = None,
) -> Path:
    """Copies a test or example plugin into the work area, edits it and builds it.

    The copy is refreshed on every call, so a benchmark always runs today's source;
    componentize-py only runs when the build cache has not seen that source yet.
    ``replace`` edits ``app.py``; ``name`` and ``version`` edit the manifest, which is
    how benchmarks make distinct components out of one plugin.
    """
    from device_host.build import build_plugin

    origin = TEST_PLUGINS / source
    if not origin.is_dir():
        origin = EXAMPLE_PLUGINS / source
    target = WORK / "built" / (label or source)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(origin, target, ignore=shutil.ignore_patterns("*.wasm", "__pycache__"))
    app = target / "app.py"
    text = app.read_text()
    for old, new in (replace or {}).items():
        if old not in text:
            raise ValueError(f"{old!r} is not in {origin}/app.py; update the benchmark")
        text = text.replace(old, new)
    app.write_text(text)
    manifest = target / "manifest.toml"
    lines = manifest.read_text().splitlines()
    edits = {"name": name, "version": version}
    for index, line in enumerate(lines):
        key = line.split("=", 1)[0].strip()
        if edits.get(key) is not None:
            lines[index] = f'{key} = "{edits[key]}"'
    manifest.write_text("\n".join(lines) + "\n")
    build_plugin(target)
    return target


def component_of(plugin_dir: Path) -> Path:
    from fleet_common.manifest import load_manifest

    return plugin_dir / load_manifest(plugin_dir / "manifest.toml").component


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def precompile(*plugin_dirs: Path) -> None:
    """Fills the compiled cache so a host started later loads every component warm."""
    from device_host.runtime import ArtifactCache, create_engine
    from fleet_common.compiler.settings import EngineSettings
    from fleet_common.manifest import load_manifest

    settings = EngineSettings()
    engine = create_engine(settings)
    cache = ArtifactCache(COMPILED, engine, settings)
    for plugin_dir in plugin_dirs:
        manifest = load_manifest(plugin_dir / "manifest.toml")
        wasm = plugin_dir / manifest.component
        if not cache.artifact_path(sha256_of(wasm)).exists():
            print(f"compiling {manifest.label} into the bench cache…", flush=True)
            cache.load(wasm, plugin=manifest.name, version=manifest.version)


def prune_compiled() -> int:
    """Deletes compiled components of sources no longer built (plugins change daily);
    returns how many went. Each is about 32 MB."""
    from device_host.runtime import ArtifactCache, create_engine
    from fleet_common.compiler.settings import EngineSettings

    keep = {sha256_of(wasm) for wasm in (WORK / "built").glob("*/*.wasm")}
    settings = EngineSettings()
    return len(ArtifactCache(COMPILED, create_engine(settings), settings).prune(keep))
