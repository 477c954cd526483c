"""Compiles one component into an empty compiled dir, as a device does on an update.

``python bench/fleet/compile_once.py <component.wasm> <empty dir>``; prints the milliseconds
the compile took inside the process (hyperfine times the whole process around it).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    from device_host.runtime import ArtifactCache, LoadHow, create_engine
    from fleet_common.compiler.settings import EngineSettings

    wasm, directory = Path(sys.argv[1]), Path(sys.argv[2])
    settings = EngineSettings()
    cache = ArtifactCache(directory, create_engine(settings), settings)
    started = time.monotonic()
    compiled = cache.load(wasm, plugin="bench", version="0")
    if compiled.how != LoadHow.COMPILED:
        raise SystemExit(f"compile_once: {directory} already held this component")
    print(f"compiled in {(time.monotonic() - started) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
