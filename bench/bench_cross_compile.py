"""Compiling the dashboard for the Pis under qemu, against compiling it for this machine.

    .venv/bin/python bench/bench_cross_compile.py [--runs 1] [--cpu cortex-a53]

The control plane compiles each plugin once per device class. For the Pis (aarch64
baseline target) it runs the compiler process (``fleet_common.compiler.child compile``) in
Debian's arm64 python3.11 under ``qemu-aarch64-static`` (`emulated_python`); for x86_64
devices it runs it natively. Both compile the same component cold into an empty folder, one
after the other, and each run's wall time, CPU time (user + system) and peak RSS come from
``wait4`` on that process alone. Ratios are against the native compile of the same run.
The first run may also build the arm64 sysroot (about 20 s, not timed). Measurement only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import harness

from fleet_common.compiler.emulation import emulated_python
from fleet_common.compiler.run import COMPILE_DATA_LIMIT
from fleet_common.compiler.settings import EngineSettings, native_target

AARCH64 = "aarch64-unknown-linux-gnu"


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    artifact_sha256: str
    artifact_size: int


def compile_once(argv: list[str], env: dict[str, str], wasm: Path, settings: EngineSettings) -> Run:
    """One cold compile in a fresh folder, measured on that child alone (``wait4``)."""
    with tempfile.TemporaryDirectory(prefix="bench-cross-", dir=harness.WORK) as work:
        artifact = Path(work) / "out.cwasm"
        command = [
            *argv,
            "-m",
            "fleet_common.compiler.child",
            "compile",
            str(wasm),
            harness.sha256_of(wasm),
            str(artifact),
            settings.to_json(),
            str(COMPILE_DATA_LIMIT),
        ]
        with open(Path(work) / "out.json", "w+") as out, open(Path(work) / "err", "w+") as err:
            started = time.monotonic()
            child = subprocess.Popen(command, env=env, stdout=out, stderr=err, cwd=harness.REPO)
            _, status, usage = os.wait4(child.pid, 0)
            wall = time.monotonic() - started
            child.returncode = os.waitstatus_to_exitcode(status)
            if child.returncode != 0:
                err.seek(0)
                raise SystemExit(f"compile failed ({child.returncode}): {err.read()[-500:]}")
            out.seek(0)
            answer = json.loads(out.read())
    return Run(
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,
        artifact_sha256=str(answer["artifact_sha256"]),
        artifact_size=int(answer["artifact_size"]),
    )


def best(runs: list[Run]) -> Run:
    """The least disturbed run: each figure's minimum (other tenants only ever add to them)."""
    return Run(
        wall_s=min(run.wall_s for run in runs),
        cpu_s=min(run.cpu_s for run in runs),
        peak_rss_mb=min(run.peak_rss_mb for run in runs),
        artifact_sha256=runs[0].artifact_sha256,
        artifact_size=runs[0].artifact_size,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="cold compiles per class")
    parser.add_argument("--cpu", action="append", help="emulated CPU (repeatable)")
    args = parser.parse_args()
    cpus = args.cpu or ["cortex-a53"]
    harness.WORK.mkdir(parents=True, exist_ok=True)
    wasm = harness.component_of(harness.built_plugin("dashboard"))
    native_env = {**os.environ, "PYTHONPATH": str(harness.REPO)}
    classes = {f"{native_target()} (native)": ([sys.executable], native_env, native_target())}
    for cpu in cpus:
        argv, env = emulated_python(cpu)
        classes[f"{AARCH64} (qemu -cpu {cpu})"] = (argv, env, AARCH64)
    harness.wait_for_quiet()
    load = harness.load_before()
    runs: dict[str, list[Run]] = {name: [] for name in classes}
    for _ in range(args.runs):
        for name, (argv, env, target) in classes.items():
            print(f"compiling the dashboard for {name}…", flush=True)
            runs[name].append(compile_once(argv, env, wasm, EngineSettings(target=target)))
    native = best(runs[next(iter(classes))])
    rows: list[list[object]] = []
    for name, class_runs in runs.items():
        fastest = best(class_runs)
        digests = {run.artifact_sha256 for run in class_runs}
        rows.append(
            [
                name,
                f"{fastest.wall_s:.1f} s ({harness.ratio(fastest.wall_s, native.wall_s)})",
                f"{fastest.cpu_s:.1f} s ({harness.ratio(fastest.cpu_s, native.cpu_s)})",
                f"{fastest.peak_rss_mb:.0f} MB "
                f"({harness.ratio(fastest.peak_rss_mb, native.peak_rss_mb)})",
                f"{class_runs[0].artifact_size:,} B, "
                + (digests.pop()[:12] if len(digests) == 1 else "differs between runs"),
            ]
        )
    section = "\n".join(
        [
            "## cross_compile",
            "",
            f"Cold compile of the dashboard component ({wasm.stat().st_size:,} bytes) by the "
            f"compiler process, best of {args.runs}; ratios against the native compile.",
            "",
            harness.table(["class", "wall", "CPU", "peak RSS", "artifact, sha256"], rows),
        ]
    )
    data = {
        "load_before": load,
        "component_bytes": wasm.stat().st_size,
        "runs": {name: [run.__dict__ for run in class_runs] for name, class_runs in runs.items()},
    }
    harness.save("cross_compile", data, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
