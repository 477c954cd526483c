"""Bytes on the wire per update, against the raw component, and what else could be sent.

Measured (read from the other benchmarks' results): the artifact download, the push and a
heartbeat as they crossed the loopback wire. Computed here from the same components:
zstd at the control plane's level (``CONTROL_PLANE_ARTIFACT_ZSTD_LEVEL``, default 9, with
python zstandard as the control plane does), at level 19, and ``zstd --patch-from`` deltas
against the previous version (the zstd CLI), with their times and what a device would
need to decode them.

    .venv/bin/python bench/fleet/bench_wire.py     # after bench_delivery.py and bench_heartbeats.py
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import zstandard
from common import (
    RESULTS,
    WORK,
    Table,
    build_variant,
    component_of,
    exit_on_sigterm,
    machine,
    machine_line,
    write_results,
)

HEARTBEAT_INTERVAL_S = 10


def main() -> None:
    exit_on_sigterm()
    level = int(os.environ.get("CONTROL_PLANE_ARTIFACT_ZSTD_LEVEL", "9"))
    print("building hello 1.0.0, hello 2.0.0 and dashboard")
    v1 = component_of(build_variant("hello", "hello-v1"))
    v2 = component_of(
        build_variant("hello", "hello-v2", replace={"version 1": "version 2"}, version="2.0.0")
    )
    dashboard = component_of(build_variant("dashboard", "wire-dashboard"))
    scratch = WORK / "wire"
    scratch.mkdir(parents=True, exist_ok=True)

    raw = v2.stat().st_size
    options = [
        whole(v2, level, f"zstd -{level} (what the control plane stores and sends)"),
        whole(v2, 19, "zstd -19"),
        delta(v1, v2, 9, scratch, "zstd -9 --patch-from hello 1.0.0 (one line changed)"),
        delta(v1, v2, 19, scratch, "zstd -19 --patch-from hello 1.0.0"),
        delta(dashboard, v2, 19, scratch, "zstd -19 --patch-from dashboard (another plugin)"),
    ]
    data = {
        "machine": machine(),
        "level": level,
        "raw_component_bytes": raw,
        "options": options,
        "measured": _measured(),
        "sha256": hashlib.sha256(v2.read_bytes()).hexdigest(),
    }
    write_results("wire", data, markdown(data))


def whole(wasm: Path, level: int, label: str) -> dict[str, object]:
    data = wasm.read_bytes()
    started = time.monotonic()
    compressed = zstandard.ZstdCompressor(level=level).compress(data)
    compress_s = time.monotonic() - started
    started = time.monotonic()
    reader = zstandard.ZstdDecompressor().stream_reader(compressed)
    while reader.read(1 << 16):
        pass
    decompress_s = time.monotonic() - started
    params = zstandard.get_frame_parameters(compressed)
    return {
        "label": label,
        "bytes": len(compressed),
        "compress_s": round(compress_s, 2),
        "decompress_ms": round(decompress_s * 1000),
        "window_mib": round(params.window_size / 2**20, 1),
    }


def delta(
    reference: Path, target: Path, level: int, scratch: Path, label: str
) -> dict[str, object]:
    """``zstd --patch-from``: the device would need the reference and a window as large."""
    patch = scratch / f"{target.stem}-from-{reference.stem}-{level}.zst"
    started = time.monotonic()
    subprocess.run(
        [
            "zstd",
            "-q",
            "-f",
            f"-{level}",
            f"--patch-from={reference}",
            str(target),
            "-o",
            str(patch),
        ],
        check=True,
    )
    compress_s = time.monotonic() - started
    restored = scratch / "restored.wasm"
    started = time.monotonic()
    subprocess.run(
        [
            "zstd",
            "-q",
            "-f",
            "-d",
            "--long=31",
            f"--patch-from={reference}",
            str(patch),
            "-o",
            str(restored),
        ],
        check=True,
    )
    decompress_s = time.monotonic() - started
    if restored.read_bytes() != target.read_bytes():
        raise SystemExit(f"bench: {patch} does not restore {target}")
    restored.unlink()
    listing = subprocess.run(["zstd", "-lv", str(patch)], capture_output=True, text=True).stdout
    window = re.search(r"Window Size:\s*([\d.]+ \w+)", listing)
    return {
        "label": label,
        "bytes": patch.stat().st_size,
        "compress_s": round(compress_s, 2),
        "decompress_ms": round(decompress_s * 1000),
        "window": window.group(1) if window else "?",
    }


def _measured() -> dict[str, object]:
    measured: dict[str, object] = {}
    wire = WORK / "wire-measured.json"
    if wire.exists():
        measured["delivery"] = json.loads(wire.read_text())
    heartbeats = RESULTS / "heartbeats-sqlite.json"
    if heartbeats.exists():
        runs = json.loads(heartbeats.read_text())["runs"]
        measured["heartbeat_bench"] = {
            str(r["readings"]): r["sizes"] for r in runs if not r.get("health")
        }
    return measured


def markdown(data: dict) -> str:  # type: ignore[type-arg]
    raw = data["raw_component_bytes"]
    rows = [["raw component (hello 2.0.0)", f"{raw:,}", "100 %", "", "", ""]]
    for option in data["options"]:
        window = option.get("window") or f"{option['window_mib']} MiB"
        rows.append(
            [
                option["label"],
                f"{option['bytes']:,}",
                f"{option['bytes'] / raw * 100:.2f} %",
                f"{option['compress_s']} s",
                f"{option['decompress_ms']} ms",
                window,
            ]
        )
    options = Table(
        ["what a device would download", "bytes", "of raw", "compress", "decode", "window"], rows
    )
    lines = [
        f"### Bytes on the wire per update\n\n{machine_line(data['machine'])}. hello is a "
        f"componentize-py component: the CPython runtime and standard library are almost all "
        f"of it. Decode times are for one core (python zstandard; the zstd CLI for deltas).\n",
        options.markdown(),
        "",
        "The two delta rows are a possible future: the device would keep the previous "
        "component (it does: it keeps the last good release) and decode with a window as "
        "large as the component (`--long`, tens of MiB of memory).",
    ]
    delivery = data["measured"].get("delivery")
    if delivery:
        update = (
            delivery["artifact_body_bytes"]
            + delivery["artifact_headers_bytes"]
            + delivery["envelope_bytes"]
        )
        beat = delivery["heartbeat_request_body_bytes"] + delivery["heartbeat_answer_body_bytes"]
        measured = Table(
            ["measured on the wire (bench_delivery, one plugin)", "bytes"],
            [
                ["artifact download body (zstd as stored)", f"{delivery['artifact_body_bytes']:,}"],
                ["artifact request + answer headers", f"{delivery['artifact_headers_bytes']:,}"],
                ["desired-state envelope (signed, 1 release)", f"{delivery['envelope_bytes']:,}"],
                [
                    "one update in all (push + download)",
                    f"{update:,} ({update / raw * 100:.1f} % of raw)",
                ],
                [
                    "heartbeat body up / down (median of a device host's own, ~5 readings)",
                    f"{delivery['heartbeat_request_body_bytes']:,.0f} / "
                    f"{delivery['heartbeat_answer_body_bytes']:,.0f}",
                ],
                [
                    f"heartbeat bodies per device and day at {HEARTBEAT_INTERVAL_S} s",
                    f"{beat * 86400 / HEARTBEAT_INTERVAL_S / 1e6:,.1f} MB",
                ],
            ],
        )
        lines += ["", measured.markdown()]
    bench = data["measured"].get("heartbeat_bench")
    if bench:
        rows = [
            [
                readings,
                f"{s['request_headers'] + s['request_body']:,} ({s['request_body']:,})",
                f"{s['answer_headers'] + s['answer_body']:,} ({s['answer_body']:,})",
            ]
            for readings, s in bench.items()
        ]
        lines += [
            "",
            Table(
                [
                    "heartbeat with 3 plugins (bench_heartbeats), readings",
                    "up: all (body)",
                    "down: all (body)",
                ],
                rows,
            ).markdown(),
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
