"""Host RSS while a component with eight memories grows all of them as far as it may.

A fresh process instantiates a hand-made component (tests/runtime/wat_components.py)
whose core module defines eight memories, under ``memory-mib = 64``, and calls its
``grow`` export until no memory grows any more, touching every page. Printed: what the
guest got and the host's RSS before and after. ``--baseline-tree`` runs the same probe
against another checkout (e.g. ``git archive`` of the previous commit) side by side.
Measurement only: nothing here passes or fails.

    .venv/bin/python bench/bench_memory_cap.py [--baseline-tree /tmp/head]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_PROBE = r"""
import json, sys
from pathlib import Path
from fleet_common.compiler.settings import EngineSettings
from device_host.hardware import SimulatedGpio
from fleet_common.manifest import parse_manifest
from device_host.runtime import ArtifactCache, GuestLog, HostServices, create_engine
from device_host.runtime._instance import ExportRef, PluginInstance
from device_host.runtime._linking import build_linker
from device_host.storage.kv import KvStores
from tests.runtime.wat_components import GROW_EXPORT, memory_hog

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS:")) / 1024

work = Path(sys.argv[1])
settings = EngineSettings()
engine = create_engine(settings)
manifest = parse_manifest({"name": "hog", "version": "1.0.0", "world": "dashboard",
                           "limits": {"memory-mib": 64}})
compiled = ArtifactCache(work / "compiled", engine, settings).load(
    memory_hog(work / "hog.wasm", memories=8, pages=1), plugin="hog", version="1.0.0")
log = GuestLog("hog")
services = HostServices(sensors={}, gpio=SimulatedGpio([]))
linker = build_linker(engine, manifest, services, log, KvStores(work / "kv"))
instance = PluginInstance(engine, linker, compiled.component, manifest, log)
before = rss_mb()
pages = 8
for _ in range(1000):
    granted = instance.call(ExportRef(*GROW_EXPORT), 8, budget_ms=5000)
    pages += granted
    if not granted:
        break
print(json.dumps({"guest MiB": pages / 16, "RSS before MB": before, "RSS after MB": rss_mb()}))
"""


def probe(tree: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-cap-") as work:
        env = {**os.environ, "PYTHONPATH": f"{tree}:{REPO}"}
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, work],
            env=env,
            cwd=tree,
            capture_output=True,
            text=True,
            check=True,
        )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-tree", type=Path)
    args = parser.parse_args()
    runs = {"this tree": probe(REPO)}
    if args.baseline_tree:
        runs["baseline"] = probe(args.baseline_tree)
    print("| figure | " + " | ".join(runs) + " |")
    print("|---|" + "---|" * len(runs))
    for figure in runs["this tree"]:
        print(f"| {figure} | " + " | ".join(f"{r[figure]:.0f}" for r in runs.values()) + " |")


if __name__ == "__main__":
    main()
