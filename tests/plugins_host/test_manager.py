"""PluginManager: output pins granted to one plugin at a time, and a compiled cache pruned by
reference after real swaps of real components."""

from __future__ import annotations

import dataclasses
import gc
import shutil
import threading
from pathlib import Path

import pytest

from device_host.metrics import Metrics
from device_host.plugins.events import EventLog
from device_host.plugins.manager import PluginManager
from device_host.plugins.quarantine import QuarantinePolicy
from device_host.runtime import ArtifactCache, LoadContext
from fleet_common.compiler.settings import EngineSettings
from fleet_common.digest import file_sha256
from fleet_common.errors import PluginLoadError
from fleet_common.manifest import Manifest, load_manifest


@dataclasses.dataclass(frozen=True)
class Built:
    manifest: Manifest
    wasm: Path

    @property
    def sha256(self) -> str:
        return file_sha256(self.wasm)


def _built(folder: Path) -> Built:
    manifest = load_manifest(folder / "manifest.toml")
    return Built(manifest, folder / manifest.component)


@pytest.fixture(scope="module")
def hellos(build) -> list[Built]:
    """Three versions of the same plugin, each a distinct component."""
    return [
        _built(build("hello")),
        *(
            _built(
                build(
                    "hello",
                    replace={"version 1": f"version {n}"},
                    version=f"{n}.0.0",
                    label=f"hello-v{n}",
                )
            )
            for n in (2, 3)
        ),
    ]


@pytest.fixture(scope="module")
def lab(build) -> Built:
    return _built(build("lab"))


def _manager(context: LoadContext, *, prune: bool = False) -> PluginManager:
    return PluginManager(context, QuarantinePolicy(), EventLog(), Metrics(), prune_compiled=prune)


@dataclasses.dataclass(frozen=True)
class OwnCache:
    """A load context whose compiled cache is one test's alone, and the shared artifacts to
    put back in it, as an agent delivers an artifact pruning removed (a compile takes 6 s)."""

    context: LoadContext
    shared: dict[str, Path]

    def deliver(self, built: Built) -> Built:
        target = self.context.artifacts.artifact_path(built.sha256)
        if not target.exists():
            shutil.copyfile(self.shared[built.sha256], target)
        return built


@pytest.fixture
def own_cache(load_context, tmp_path, engine, hellos) -> OwnCache:
    shared = {
        built.sha256: load_context.artifacts.load(
            built.wasm, plugin="hello", version=built.manifest.version
        ).artifact
        for built in hellos
    }
    context = dataclasses.replace(
        load_context, artifacts=ArtifactCache(tmp_path / "compiled", engine, EngineSettings())
    )
    own = OwnCache(context, shared)
    for built in hellos:
        own.deliver(built)
    return own


def _cached(own: OwnCache) -> set[str]:
    directory = own.context.artifacts.artifact_path("0" * 64).parent
    return {path.name.partition("-")[0] for path in directory.glob("*.cwasm")}


def _install(manager: PluginManager, built: Built) -> None:
    manager.install(built.manifest, built.wasm)


def test_a_plugin_is_refused_an_output_pin_another_installed_plugin_drives(load_context, lab):
    manager = _manager(load_context)
    manager.install(lab.manifest, lab.wasm)
    rival = dataclasses.replace(lab.manifest, name="lab-two")

    with pytest.raises(PluginLoadError) as refused:
        manager.install(rival, lab.wasm)

    assert str(refused.value) == (
        "plugin lab-two 1.0.0: gpio out pin 17 already granted to plugin lab 1.0.0"
    )
    assert manager.slot("lab-two").load_error == str(refused.value).partition(": ")[2]
    assert manager.slot("lab").version.manifest.name == "lab"
    manager.close()


def test_a_new_version_of_the_same_plugin_keeps_its_output_pins(load_context, lab):
    manager = _manager(load_context)
    manager.install(lab.manifest, lab.wasm)

    newer = manager.install(dataclasses.replace(lab.manifest, version="1.1.0"), lab.wasm)

    assert manager.slot("lab").version is newer
    manager.close()


def test_an_output_pin_is_free_again_once_its_plugin_is_removed(load_context, lab):
    manager = _manager(load_context)
    manager.install(lab.manifest, lab.wasm)
    manager.remove("lab")

    other = manager.install(dataclasses.replace(lab.manifest, name="lab-two"), lab.wasm)

    assert manager.slot("lab-two").version is other
    manager.close()


def test_installing_the_serving_bytes_again_clears_the_refusal_it_recorded(
    load_context, hellos, tmp_path
):
    manager = _manager(load_context)
    good = hellos[0]
    manager.install(good.manifest, good.wasm)
    broken = tmp_path / "hello.wasm"
    broken.write_bytes(b"\0asm broken")
    with pytest.raises(PluginLoadError):
        manager.install(good.manifest, broken)
    assert manager.slot("hello").load_error is not None

    manager.install(good.manifest, good.wasm)

    assert manager.slot("hello").load_error is None
    manager.close()


def test_after_swaps_the_cache_holds_only_the_serving_and_the_warm_previous_component(
    own_cache, hellos
):
    manager = _manager(own_cache.context, prune=True)
    stale_engine = own_cache.context.artifacts.artifact_path(hellos[0].sha256).with_name(
        f"{hellos[0].sha256}-0123456789abcdef.cwasm"
    )
    stale_engine.write_bytes(b"compiled by an older wasmtime")
    order = [*hellos, hellos[0], hellos[1]]

    for previous, built in zip([None, *order], order, strict=False):
        _install(manager, own_cache.deliver(built))

        expected = {built.sha256} | ({previous.sha256} if previous else set())
        assert _cached(own_cache) == expected == manager.referenced_sha256s()
    assert not stale_engine.exists()
    manager.close()


def test_what_a_keep_source_names_survives_pruning(own_cache, hellos):
    manager = _manager(own_cache.context, prune=True)
    manager.keep_referenced_by(lambda: [hellos[0].sha256])

    for built in hellos:
        _install(manager, own_cache.deliver(built))

    assert _cached(own_cache) == {built.sha256 for built in hellos}
    manager.close()


def test_a_version_still_finishing_a_call_keeps_its_compiled_component(own_cache, hellos):
    manager = _manager(own_cache.context, prune=True)
    first, second, third = hellos
    _install(manager, first)
    in_call, release = threading.Event(), threading.Event()

    def hold(*_picked):
        in_call.set()
        assert release.wait(300), "the test never let the call finish"

    caller = threading.Thread(target=manager.slot("hello").call, args=(hold,))
    caller.start()
    assert in_call.wait(60), "the call never started"
    _install(manager, own_cache.deliver(second))
    _install(manager, own_cache.deliver(third))

    assert _cached(own_cache) == {first.sha256, second.sha256, third.sha256}
    release.set()
    caller.join()
    gc.collect()
    _install(manager, second)
    assert _cached(own_cache) == {second.sha256, third.sha256}
    manager.close()


def test_removing_a_plugin_prunes_its_compiled_component(own_cache, hellos):
    manager = _manager(own_cache.context, prune=True)
    _install(manager, hellos[0])

    manager.remove("hello")
    gc.collect()

    assert _cached(own_cache) == set()
    manager.close()


def test_without_pruning_the_cache_keeps_every_component(own_cache, hellos):
    manager = _manager(own_cache.context)

    for built in hellos:
        _install(manager, built)

    assert _cached(own_cache) == {built.sha256 for built in hellos}
    manager.close()
