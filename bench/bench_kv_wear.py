"""Flash wear by the key-value store: a plugin rewriting a 1 MiB value every tick.

.venv/bin/python bench/bench_kv_wear.py [--seconds 10] [--tick-hz 0]

Runs the same host-level loop (`PluginKv.set` with a new 1 MiB value per tick, as the host
function calls it) against the store as committed at ``git HEAD`` (one atomic, fsynced
rewrite per call) and against the working tree's store (write budget, coalesced flushes),
and counts the bytes each wrote, from ``/proc/self/io`` (every write is fsynced before
its rename). ``--tick-hz 0`` ticks as fast as the store allows, as a hostile plugin would.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness

VALUE_CHARS = (1 << 20) - 16
QUOTA = 1 << 20


def _written() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("no wchar in /proc/self/io")


def _committed_kv() -> Any:
    """The store module as it is at git HEAD, loaded under another name."""
    source = subprocess.run(
        ["git", "show", "HEAD:device_host/storage/kv.py"],
        capture_output=True,
        text=True,
        check=True,
        cwd=harness.REPO,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "kv_at_head.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("kv_at_head", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _loop(set_value: Any, seconds: float, tick_hz: float, text: bool) -> dict[str, float]:
    ticks = refused = 0
    started = time.monotonic()
    while (now := time.monotonic()) - started < seconds:
        payload = str(ticks % 10) * VALUE_CHARS
        if set_value("blob", payload if text else payload.encode()) is not None:
            refused += 1
        ticks += 1
        if tick_hz:
            time.sleep(max(0.0, started + ticks / tick_hz - time.monotonic()))
    return {"ticks": ticks, "refused": refused, "elapsed_s": now - started}


def measure_before(seconds: float, tick_hz: float) -> dict[str, float]:
    old = _committed_kv()
    with tempfile.TemporaryDirectory(dir=harness.WORK) as directory:
        store = old.PluginKv(Path(directory) / "blob.json", QUOTA)
        before = _written()
        figures = _loop(store.set, seconds, tick_hz, text=False)
        figures["bytes"] = _written() - before
    return figures


def measure_after(seconds: float, tick_hz: float) -> dict[str, float]:
    from device_host.storage.kv import KvStores

    with tempfile.TemporaryDirectory(dir=harness.WORK) as directory:
        stores = KvStores(Path(directory))
        store = stores.for_plugin("blob", QUOTA)
        before = _written()
        figures = _loop(store.set, seconds, tick_hz, text=True)
        stores.close()
        figures["bytes"] = _written() - before
        figures["flushes"] = store.flushes
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--tick-hz", type=float, default=0.0)
    args = parser.parse_args()
    harness.WORK.mkdir(parents=True, exist_ok=True)
    load = harness.load_before()
    before = measure_before(args.seconds, args.tick_hz)
    after = measure_after(args.seconds, args.tick_hz)
    rows = [
        [
            label,
            int(run["ticks"]),
            int(run["refused"]),
            f"{run['bytes'] / run['elapsed_s'] / 1e6:.3f}",
            f"{run['bytes'] / 1e6:.1f}",
        ]
        for label, run in (("before (git HEAD)", before), ("after (working tree)", after))
    ]
    pace = f"{args.tick_hz:g} ticks/s" if args.tick_hz else "as fast as possible"
    results = harness.table(
        ["store", "ticks", "refused", "MB/s written + fsynced", "MB total"], rows
    )
    section = f"""## Key-value flash wear: a 1 MiB value rewritten every tick ({pace})

{args.seconds:g} s of `PluginKv.set("blob", <new 1 MiB value>)` per store, with the default
budget (64 KiB/min, quota 1 MiB); bytes from `/proc/self/io` `wchar`, including the final
flush at close.

{results}
"""
    harness.save("kv_wear", {"load_before": load, "before": before, "after": after}, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
