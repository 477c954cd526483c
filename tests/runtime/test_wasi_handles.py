"""WASI handles a guest hoards live outside its memory cap: bounded, and given back."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from device_host.errors import PluginTrap, TrapKind
from device_host.runtime import ArtifactCache, GuestLog, LoadContext
from device_host.runtime._instance import ExportRef, PluginInstance
from device_host.runtime._linking import build_linker
from device_host.runtime._memory import give_back_heap
from fleet_common.compiler.settings import EngineSettings
from fleet_common.manifest import CALL_TIMEOUT_MS_RANGE, parse_manifest
from tests.runtime.wat_components import HOARD_EXPORT, handle_hoarder

MIB = 1 << 20


def _rss() -> int:
    with Path("/proc/self/status").open() as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


@pytest.fixture
def hoarder(load_context: LoadContext, engine, tmp_path):  # type: ignore[no-untyped-def]
    # The longest deadline a manifest may ask for: on a loaded machine, hoarding up to the
    # store's handle limit must not be cut short by the call's deadline instead.
    manifest = parse_manifest(
        {
            "name": "hoard",
            "version": "1.0.0",
            "world": "dashboard",
            "limits": {"call-timeout-ms": CALL_TIMEOUT_MS_RANGE.stop - 1},
        }
    )
    cache = ArtifactCache(tmp_path / "compiled", engine, EngineSettings())
    compiled = cache.load(handle_hoarder(tmp_path / "hoard.wasm"), plugin="hoard", version="1.0.0")
    log = GuestLog("hoard")
    linker = build_linker(engine, manifest, load_context.services, log, load_context.kv_stores)
    return lambda: PluginInstance(engine, linker, compiled.component, manifest, log)


def test_a_store_holds_a_bounded_number_of_handles_then_the_call_traps(hoarder):
    instance = hoarder()

    with pytest.raises(PluginTrap) as trapped:
        instance.call(ExportRef(*HOARD_EXPORT), 1_000_000)

    assert trapped.value.kind is TrapKind.CRASH
    assert "store handle limit exceeded" in trapped.value.detail
    assert instance.dead


def test_the_memory_of_hoarded_handles_goes_back_when_the_store_is_dropped(hoarder):
    instance = hoarder()
    give_back_heap()
    before = _rss()

    assert instance.call(ExportRef(*HOARD_EXPORT), 80_000) == 80_000
    held = _rss() - before
    instance.close()
    del instance
    gc.collect()
    give_back_heap()

    assert held > 30 * MIB, "80,000 handles cost the host real memory while the Store lives"
    assert _rss() - before < 10 * MIB
