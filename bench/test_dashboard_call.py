"""Benchmark 1, in-process part: one dashboard call without HTTP, sandboxed vs native.

Explains the wrk figures of bench_dashboard.py: the same plugin answers ``/`` (the page,
about 4 KB) and ``/reading.json`` (about 100 bytes, same sensor read) through the runtime
(``LoadedVersion.respond``, pooled instance) and natively (native_plugin.py).
The difference between the two sandboxed paths is the bigger page: rendering it in the
guest and its body crossing the component boundary.

Run: ``.venv/bin/pytest bench/test_dashboard_call.py`` (bench_dashboard.py runs it).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import harness
import pytest
from native_plugin import NativePlugin

from device_host.hardware import Dht22Sampler, SimulatedDht22, SimulatedGpio
from device_host.runtime import (
    ArtifactCache,
    EpochTicker,
    GuestLog,
    HostServices,
    HttpRequest,
    LoadContext,
    LoadedVersion,
    create_engine,
    load_version,
)
from device_host.storage.kv import KvStores
from fleet_common.compiler.settings import EngineSettings
from fleet_common.manifest import load_manifest

ROUNDS = 1000
PATHS = ["/", "/reading.json"]


@pytest.fixture(scope="module")
def services() -> Iterator[HostServices]:
    sampler = Dht22Sampler(SimulatedDht22(seed=7), pin=4, interval_s=2.0)
    sampler.start()
    deadline = time.monotonic() + 10
    while sampler.lookup().reading is None and time.monotonic() < deadline:
        time.sleep(0.01)
    yield HostServices(sensors={4: sampler}, gpio=SimulatedGpio([17]))
    sampler.stop()


@pytest.fixture(scope="module")
def dashboard() -> Path:
    built = harness.built_plugin("dashboard")
    harness.precompile(built)
    return built


@pytest.fixture(scope="module")
def kv_stores() -> Iterator[KvStores]:
    with tempfile.TemporaryDirectory(prefix="bench-kv-") as kv_dir:
        yield KvStores(Path(kv_dir))


@pytest.fixture(scope="module")
def sandboxed(dashboard, services, kv_stores) -> Iterator[LoadedVersion]:
    settings = EngineSettings()
    engine = create_engine(settings)
    ticker = EpochTicker(engine)
    ticker.start()
    context = LoadContext(
        engine=engine,
        artifacts=ArtifactCache(harness.COMPILED, engine, settings),
        services=services,
        kv_stores=kv_stores,
        pool_size=1,
    )
    manifest = load_manifest(dashboard / "manifest.toml")
    version = load_version(context, manifest, dashboard / manifest.component, GuestLog("dash"))
    yield version
    version.retire()
    ticker.stop()


@pytest.fixture(scope="module")
def native(dashboard, services, kv_stores) -> NativePlugin:
    return NativePlugin(dashboard, services, kv_stores, GuestLog("dashboard-native"))


@pytest.mark.parametrize("path", PATHS)
def test_sandboxed(benchmark, sandboxed, path):
    request = HttpRequest(method="GET", path=path)

    def call():
        return sandboxed.respond(request, lambda: None)

    reply = benchmark.pedantic(call, rounds=ROUNDS, iterations=1, warmup_rounds=50)

    assert reply.status == 200
    benchmark.extra_info["body_bytes"] = len(reply.body)


@pytest.mark.parametrize("path", PATHS)
def test_native(benchmark, native, path):
    request = HttpRequest(method="GET", path=path)

    reply = benchmark.pedantic(
        native.handle, args=(request,), rounds=ROUNDS, iterations=1, warmup_rounds=50
    )

    assert reply.status == 200
    benchmark.extra_info["body_bytes"] = len(reply.body)
