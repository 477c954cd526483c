"""Run inside the emulated arm64 Python: load a delivered artifact, serve one page, say how.

    python emulated_serve.py <artifact.cwasm> <component.wasm> <plugin-dir> <settings-json>

This plays a Pi that never compiles: the artifact goes where the device host's own
`ArtifactCache` looks for a delivered one, `load_version` loads it as `Delivered`, and the
compiler process is replaced by a function that fails, so a compile would show as an
error rather than as a slow pass. Prints one JSON object: status, body size, how the
version was loaded, and the compiles attempted (always 0 when it works).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
from pathlib import Path

import device_host.runtime._artifacts as artifacts_module
from device_host.hardware import Dht22Sampler, SimulatedDht22, SimulatedGpio
from device_host.runtime import (
    ArtifactCache,
    Delivered,
    GuestLog,
    HostServices,
    HttpRequest,
    LoadContext,
    create_engine,
    load_version,
)
from device_host.storage.kv import KvStores
from fleet_common.compiler.run import Compiled, CompileJob
from fleet_common.compiler.settings import EngineSettings
from fleet_common.components import inspect_file
from fleet_common.manifest import load_manifest

compiles: list[Path] = []


def _no_compile(job: CompileJob) -> Compiled:
    compiles.append(job.source)
    raise AssertionError("the device compiled instead of loading the delivered artifact")


def main() -> None:
    artifact, wasm, plugin_dir = (Path(arg) for arg in sys.argv[1:4])
    settings = EngineSettings.from_json(sys.argv[4])
    artifacts_module.compile_in_child = _no_compile  # type: ignore[attr-defined]
    manifest = load_manifest(plugin_dir / "manifest.toml")
    footprint, sha256, size = inspect_file(wasm, manifest.name, manifest.version)
    engine = create_engine(settings)
    sensor = Dht22Sampler(SimulatedDht22(seed=7), pin=4, interval_s=0.05)
    sensor.start()
    with tempfile.TemporaryDirectory(prefix="emulated-serve-") as work:
        cache = ArtifactCache(Path(work) / "compiled", engine, settings)
        os.symlink(artifact.resolve(), cache.artifact_path(sha256))
        context = LoadContext(
            engine=engine,
            artifacts=cache,
            services=HostServices(sensors={4: sensor}, gpio=SimulatedGpio([17])),
            kv_stores=KvStores(Path(work) / "kv"),
            pool_size=1,
        )
        version = load_version(
            context, manifest, Delivered(sha256, size, footprint), GuestLog(manifest.name)
        )
        reply = version.respond(HttpRequest("GET", "/"), lambda: None)
        version.retire()
    sensor.stop()
    answer = {
        "status": reply.status,
        "body_bytes": len(reply.body),
        "body_start": reply.body[:200].decode(errors="replace"),
        "how": str(version.how),
        "compiles": len(compiles),
        "engine_key": cache.engine_key,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
