"""Host RSS after cold compiles and a refused 200 MB file: does the host give memory back?

A fresh process plays the host: it creates the engine, loads three distinct example
components into an empty compiled cache (three cold compiles), then tries to load a
200 MB file that starts like a component. Its RSS is read after each step and again
after a pause. ``--baseline-tree`` runs the same probe against another checkout of the
device host (e.g. ``git archive`` of the previous commit) in the same run, for a side by
side figure. Measurement only: nothing here passes or fails.

    .venv/bin/python bench/bench_compile_memory.py [--baseline-tree /tmp/head] [--pause 5]
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
PLUGINS = ("dashboard", "demo-dashboard", "demo-sensor")

_PROBE = r"""
import json, sys, time
from pathlib import Path
from fleet_common.errors import PluginLoadError
from fleet_common.compiler.settings import EngineSettings
from device_host.runtime import ArtifactCache, create_engine

def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS:")) / 1024

work, pause, wasms = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
settings = EngineSettings()
cache = ArtifactCache(work / "compiled", create_engine(settings), settings)
figures = {"start": rss_mb()}
for wasm in wasms:
    cache.load(Path(wasm), plugin=Path(wasm).stem, version="1.0.0")
figures["after 3 cold compiles"] = rss_mb()
huge = work / "huge.wasm"
with huge.open("wb") as out:
    out.write(b"\x00asm\x0d\x00\x01\x00")
    out.truncate(200 << 20)
try:
    cache.load(huge, plugin="huge", version="1.0.0")
except PluginLoadError as refused:
    figures["refusal"] = refused.reason[:120]
figures["after refusing 200 MB"] = rss_mb()
time.sleep(pause)
figures[f"{pause:.0f} s later"] = rss_mb()
print(json.dumps(figures))
"""


def probe(tree: Path, pause: float) -> dict[str, object]:
    wasms = [str(REPO / "plugins" / name / f"{name}.wasm") for name in PLUGINS]
    with tempfile.TemporaryDirectory(prefix="bench-compile-") as work:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, work, str(pause), *wasms],
            env=env,
            cwd=tree,
            capture_output=True,
            text=True,
            check=True,
        )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-tree", type=Path)
    parser.add_argument("--pause", type=float, default=5.0)
    args = parser.parse_args()
    runs = {"this tree": probe(REPO, args.pause)}
    if args.baseline_tree:
        runs["baseline"] = probe(args.baseline_tree, args.pause)
    steps = list(runs["this tree"])
    print("| step | " + " | ".join(runs) + " |")
    print("|---|" + "---|" * len(runs))
    for step in steps:
        cells = []
        for figures in runs.values():
            value = figures.get(step, "")
            cells.append(f"{value:.0f} MB" if isinstance(value, float) else str(value))
        print(f"| {step} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
