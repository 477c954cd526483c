"""A plugin's memory cap holds for the whole instance: every memory, every table, together."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_host.runtime import ArtifactCache, GuestLog, LoadContext
from device_host.runtime._instance import ExportRef, PluginInstance
from device_host.runtime._linking import build_linker
from device_host.runtime._memory import resident_bytes
from fleet_common.compiler.settings import EngineSettings
from fleet_common.errors import PluginLoadError
from fleet_common.footprint import Footprint, Limits, read_footprint
from fleet_common.limits import budget_problem, store_limits
from fleet_common.manifest import parse_manifest
from tests.runtime.wat_components import GROW_EXPORT, memory_hog

MIB = 1 << 20
PAGE = 64 << 10


def _manifest(memory_mib: int = 64):  # type: ignore[no-untyped-def]
    return parse_manifest(
        {
            "name": "hog",
            "version": "1.0.0",
            "world": "dashboard",
            "limits": {"memory-mib": memory_mib},
        }
    )


@pytest.fixture
def cache(engine, tmp_path: Path) -> ArtifactCache:
    return ArtifactCache(tmp_path / "compiled", engine, EngineSettings())


def _instance(context: LoadContext, cache: ArtifactCache, wasm: Path) -> PluginInstance:
    manifest = _manifest()
    compiled = cache.load(wasm, plugin="hog", version="1.0.0", memory_mib=64)
    log = GuestLog("hog")
    linker = build_linker(context.engine, manifest, context.services, log, context.kv_stores)
    return PluginInstance(context.engine, linker, compiled.component, manifest, log)


def test_eight_memories_adding_up_past_the_cap_are_refused_before_any_compile(cache, tmp_path):
    wasm = memory_hog(tmp_path / "hog.wasm", memories=8, pages=1000)

    with pytest.raises(PluginLoadError) as refused:
        cache.load(wasm, plugin="hog", version="1.0.0", memory_mib=64)

    assert refused.value.reason == (
        "declares 8 linear memories of 500.0 MiB and tables of 0 KiB at start, "
        "500.0 MiB in all, more than its memory-mib = 64"
    )
    assert list((tmp_path / "compiled").iterdir()) == []


def test_memories_growing_at_run_time_stop_at_the_cap_in_total(load_context, cache, tmp_path):
    instance = _instance(load_context, cache, memory_hog(tmp_path / "g.wasm", memories=8, pages=1))

    pages = 8
    for _ in range(100):
        granted = instance.call(ExportRef(*GROW_EXPORT), 8)
        pages += granted
        if not granted:
            break

    assert pages * PAGE <= 64 * MIB
    assert pages * PAGE >= 60 * MIB, "together the memories still reach nearly the whole cap"
    instance.close()


def test_each_instance_measures_all_its_memories_and_none_of_another_instances(
    load_context, cache, tmp_path
):
    wasm = memory_hog(tmp_path / "m.wasm", memories=3, pages=1)
    first = _instance(load_context, cache, wasm)
    second = _instance(load_context, cache, wasm)

    reserved = sum(end - start for start, end in second.memory_spans)

    assert reserved >= 3 * (4 << 30), "every memory's 4 GiB reservation is covered"
    assert not any(
        start < other_end and other_start < end
        for start, end in second.memory_spans
        for other_start, other_end in first.memory_spans
    )
    assert len(resident_bytes(second.memory_spans)) == len(second.memory_spans)
    first.close()
    second.close()


def test_a_componentize_py_plugin_gets_the_whole_cap_for_its_one_memory(build):
    footprint = read_footprint((build("dashboard") / "dashboard.wasm").read_bytes())

    limits = store_limits(footprint, 64)

    assert (limits.memories, limits.tables, limits.instances) == (1, 2, 14)
    assert 63 * MIB < limits.memory_size <= 64 * MIB


def test_memories_with_a_small_maximum_leave_the_rest_of_the_cap_to_the_others():
    small = Limits(PAGE, 1 * MIB)
    open_ended = Limits(PAGE, None)
    footprint = Footprint((small, open_ended, open_ended), (), 1, 1)

    limits = store_limits(footprint, 64)

    assert limits.memory_size == (64 * MIB - 1 * MIB) // 2
    assert limits.memories == 3


def test_one_large_memory_among_many_is_refused_because_they_share_the_cap_equally():
    footprint = Footprint((Limits(40 * MIB, None),) + (Limits(PAGE, None),) * 7, (), 1, 1)

    assert budget_problem(footprint, 64) == (
        "needs a linear memory of 40.0 MiB at start, but its 8 memories share "
        "memory-mib = 64: at most 8.0 MiB each"
    )
