"""Fixtures for every test, under tests/ and inside the control plane's apps: plugins really
built with componentize-py, a real Engine, real host processes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import wasmtime

from device_host.build import build_plugin
from device_host.hardware import Dht22Sampler, SimulatedDht22, SimulatedGpio
from device_host.runtime import (
    ArtifactCache,
    EpochTicker,
    HostServices,
    LoadContext,
    create_engine,
)
from device_host.storage.kv import KvStores
from fleet_common.compiler.settings import EngineSettings
from tests.support import EXAMPLE_PLUGINS, REPO, TEST_PLUGINS, HostProcess

Builder = Callable[..., Path]


@pytest.fixture(scope="session")
def compiled_dir() -> Path:
    """Compiled components shared by the whole run (and the next: entries are content-keyed)."""
    path = Path(os.environ.get("PI_FLEET_TEST_COMPILED", REPO / "var" / "test-compiled"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def build(tmp_path_factory: pytest.TempPathFactory) -> Builder:
    """Builds a test or example plugin (optionally with edited source) into its own folder.

    ``build("hello", replace={"version 1": "version 2"}, version="2.0.0")`` builds a
    variant; componentize-py runs only when the build cache has no such source.
    """
    root = tmp_path_factory.mktemp("built")

    def _build(
        name: str,
        *,
        replace: dict[str, str] | None = None,
        version: str | None = None,
        label: str | None = None,
    ) -> Path:
        source = TEST_PLUGINS / name if (TEST_PLUGINS / name).is_dir() else EXAMPLE_PLUGINS / name
        target = root / (label or name)
        if not (target / "manifest.toml").exists():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.wasm", "__pycache__"))
            app = target / "app.py"
            text = app.read_text()
            for old, new in (replace or {}).items():
                assert old in text, f"{old!r} not in {name}/app.py"
                text = text.replace(old, new)
            app.write_text(text)
            if version is not None:
                manifest = target / "manifest.toml"
                lines = manifest.read_text().splitlines()
                manifest.write_text(
                    "\n".join(
                        f'version = "{version}"' if line.startswith("version") else line
                        for line in lines
                    )
                    + "\n"
                )
            build_plugin(target)
        return target

    return _build


@pytest.fixture(scope="session")
def engine() -> Iterator[wasmtime.Engine]:
    engine = create_engine(EngineSettings())
    ticker = EpochTicker(engine)
    ticker.start()
    yield engine
    ticker.stop()


@pytest.fixture
def sensor() -> Iterator[Dht22Sampler]:
    sampler = Dht22Sampler(SimulatedDht22(seed=7), pin=4, interval_s=0.05)
    sampler.start()
    yield sampler
    sampler.stop()


@pytest.fixture
def load_context(
    engine: wasmtime.Engine, compiled_dir: Path, sensor: Dht22Sampler, tmp_path: Path
) -> LoadContext:
    return LoadContext(
        engine=engine,
        artifacts=ArtifactCache(compiled_dir, engine, EngineSettings()),
        services=HostServices(sensors={4: sensor}, gpio=SimulatedGpio([17])),
        kv_stores=KvStores(tmp_path / "kv"),
        pool_size=2,
    )


@pytest.fixture
def host_process(tmp_path: Path, compiled_dir: Path) -> Iterator[HostProcess]:
    """An unstarted host; the test places plugins, adjusts settings, then calls start()."""
    host = HostProcess(workdir=tmp_path, compiled_dir=compiled_dir)
    yield host
    host.stop()
