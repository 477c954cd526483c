"""Benchmark 5: what a plugin's DHT22 read costs, with the sensor healthy and with it hung.

A hung DHT22 driver must not slow plugins down: the sampler owns the sensor, and a plugin's
``dht22.read`` only reads the sampler's cache. Three layers are timed, one call per round
so percentiles are per call:

* ``sampler.lookup()``, the cache read behind the host function;
* the ``dht22.read`` host function as the runtime links it (it also builds the WIT record);
* the lab plugin's ``/sensor/4`` page in-process, through ``LoadedVersion.run`` and
  ``handle_http``: the guest's import call plus the whole sandboxed request.

"hung" means the sensor gave readings, then its driver blocked for good; once the last
reading is older than ``stale_after_s`` every read answers ``timeout``.

Run: ``.venv/bin/pytest bench/test_sensor_call.py`` (``bench/bench_sensor.py`` runs it
with ``--benchmark-json`` and reports p50/p99 and the hung/healthy ratios).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import harness
import pytest
import wasmtime
from native_plugin import host_functions_for

from device_host.hardware import Dht22Sampler, SensorErrorKind, SimulatedDht22, SimulatedGpio
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

PLUGIN_ROUNDS = 2000
HOST_FUNCTION_ROUNDS = 20000
SENSOR_REQUEST = HttpRequest(method="GET", path="/sensor/4")
STALE_AFTER_S = 0.5


@pytest.fixture(scope="module")
def engine() -> Iterator[wasmtime.Engine]:
    engine = create_engine(EngineSettings())
    ticker = EpochTicker(engine)
    ticker.start()
    yield engine
    ticker.stop()


@pytest.fixture(scope="module")
def lab() -> Path:
    built = harness.built_plugin("lab")
    harness.precompile(built)
    return built


@pytest.fixture(params=["healthy", "hung"])
def sampler(request: pytest.FixtureRequest) -> Iterator[Dht22Sampler]:
    driver = SimulatedDht22(seed=7)
    sampler = Dht22Sampler(
        driver, pin=4, interval_s=0.2, stale_after_s=STALE_AFTER_S, read_timeout_s=0.2
    )
    sampler.start()
    _wait_for(lambda: sampler.lookup().reading is not None, "a first reading")
    if request.param == "hung":
        driver.hang = True
        _wait_for(lambda: sampler.lookup().error == SensorErrorKind.TIMEOUT, "a stale reading")
    yield sampler
    sampler.stop()


@pytest.fixture
def lab_version(
    engine: wasmtime.Engine, lab: Path, sampler: Dht22Sampler
) -> Iterator[LoadedVersion]:
    with tempfile.TemporaryDirectory(prefix="bench-kv-") as kv_dir:
        settings = EngineSettings()
        context = LoadContext(
            engine=engine,
            artifacts=ArtifactCache(harness.COMPILED, engine, settings),
            services=HostServices(sensors={4: sampler}, gpio=SimulatedGpio([17])),
            kv_stores=KvStores(Path(kv_dir)),
            pool_size=1,
        )
        manifest = load_manifest(lab / "manifest.toml")
        version = load_version(context, manifest, lab / manifest.component, GuestLog("lab"))
        yield version
        version.retire()


def test_sampler_lookup(benchmark, sampler):
    expect_error = sampler.lookup().error

    answer = benchmark.pedantic(
        sampler.lookup, rounds=HOST_FUNCTION_ROUNDS, iterations=1, warmup_rounds=1000
    )

    assert answer.error == expect_error


def test_dht22_host_function(benchmark, sampler, lab):
    manifest = load_manifest(lab / "manifest.toml")
    services = HostServices(sensors={4: sampler}, gpio=SimulatedGpio([17]))
    with tempfile.TemporaryDirectory(prefix="bench-kv-") as kv_dir:
        functions = host_functions_for(manifest, services, KvStores(Path(kv_dir)), GuestLog("lab"))
    read = functions["dht22"]["read"]

    answer = benchmark.pedantic(
        read, args=(None, 4), rounds=HOST_FUNCTION_ROUNDS, iterations=1, warmup_rounds=1000
    )

    assert (answer == "timeout") == (sampler.lookup().error == SensorErrorKind.TIMEOUT)


def test_plugin_sensor_call(benchmark, sampler, lab_version):
    healthy = sampler.lookup().error is None

    def call() -> object:
        return lab_version.respond(SENSOR_REQUEST, lambda: None)

    reply = benchmark.pedantic(call, rounds=PLUGIN_ROUNDS, iterations=1, warmup_rounds=100)

    assert (reply.status, healthy) in {(200, True), (409, False)}, reply.body
    if not healthy:
        assert reply.body == b"error timeout"


def _wait_for(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"the sampler never reached {what}")
        time.sleep(0.01)
