"""Result files: each benchmark's JSON and markdown section, and the assembled summary."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness._load import WrkRun
from harness._paths import REPO, RESULTS


def machine() -> dict[str, Any]:
    """Where and when the figures were taken; other tenants' load skews them."""
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1])  # type: ignore[index]
    from importlib import metadata

    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": f"{cpu}, {os.cpu_count()} vCPU",
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wasmtime": metadata.version("wasmtime"),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "commit": _git("rev-parse", "--short", "HEAD")
        + (" + uncommitted changes" if _git("status", "--porcelain") else ""),
    }


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO)
    return done.stdout.strip()


def save(name: str, data: dict[str, Any], section: str) -> None:
    """Writes one benchmark's raw numbers and its markdown section, then the summary."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = machine()
    payload = {"machine": info, **data}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
    load = data.get("load_before", "?")
    stamp = f"\n_Measured {info['date']}; load average before the run: {load}._\n"
    (RESULTS / f"{name}.md").write_text(section.rstrip() + "\n" + stamp)
    write_summary()
    print(section)


def _jsonable(value: object) -> object:
    if isinstance(value, WrkRun):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


SECTIONS = ("dashboard", "hot_swap", "restart", "memory", "sensor_call", "plugin_attacks")


def write_summary() -> Path:
    """Assembles ``summary.md`` from the sections present, each stamped with its own date."""
    info = machine()
    head = [
        "# Device host benchmarks",
        "",
        f"Summary written {info['date']} on {info['cpu']}, {info['memory']} RAM, "
        f"Linux {info['kernel']}, Python {info['python']}, wasmtime-py {info['wasmtime']}, "
        f"commit {info['commit']}.",
        "Loopback only; the load generator shares the 2 cores with the host. "
        "See bench/README.md for what each figure means.",
        "",
    ]
    body = []
    for name in SECTIONS:
        path = RESULTS / f"{name}.md"
        if path.exists():
            body.append(path.read_text().rstrip() + "\n")
        else:
            body.append(f"## {name}\n\n_Not run yet: see bench/README.md._\n")
    summary = RESULTS / "summary.md"
    summary.write_text("\n".join(head) + "\n" + "\n".join(body))
    return summary


def load_before() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"
