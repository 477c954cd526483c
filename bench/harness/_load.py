"""Load generators and timers: wrk runs and pytest-benchmark files, reduced to figures."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from typing import Any

from harness._cpu import CpuMeter
from harness._paths import BENCH, PYTHON, REPO, RESULTS, WRK_SCRIPT


@dataclass(frozen=True)
class WrkRun:
    """One wrk run. Latencies are in milliseconds; wrk does not correct coordinated omission."""

    url: str
    threads: int
    connections: int
    duration_s: float
    requests: int
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float
    statuses: dict[str, int]
    socket_errors: dict[str, int]
    non_2xx_3xx: int
    error_samples: dict[str, str] = field(default_factory=dict)
    """One reply message per error status and wrk thread, to say what failed."""
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU use during the run in % of one core: ours (host + wrk) and other processes'."""

    @property
    def failed(self) -> int:
        """Replies that were not 2xx/3xx plus requests lost to socket errors or timeouts."""
        return self.non_2xx_3xx + sum(self.socket_errors.values())


def wrk(
    url: str,
    *,
    duration_s: int = 10,
    threads: int = 2,
    connections: int = 8,
    timeout_s: int = 5,
    raw_name: str | None = None,
    host_pid: int | None = None,
) -> WrkRun:
    """Runs ``wrk --latency`` with the report script and parses its JSON line."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        f"--timeout={timeout_s}s",
        "--latency",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    meter = CpuMeter((host_pid,) if host_pid else ())
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    cpu = meter.stop()
    if raw_name:
        raw = RESULTS / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        (raw / f"{raw_name}.txt").write_text(" ".join(command) + "\n\n" + done.stdout)
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRK_JSON "))
    data = json.loads(line.removeprefix("WRK_JSON "))
    latency = data["latency_us"]
    duration = data["duration_us"] / 1e6
    samples: dict[str, list[str]] = {}
    for sample in done.stdout.splitlines():
        if sample.startswith("WRK_SAMPLE "):
            _, status, message = sample.split(" ", 2)
            if message not in samples.setdefault(status, []):
                samples[status].append(message)
    return WrkRun(
        url=url,
        threads=threads,
        connections=connections,
        duration_s=round(duration, 2),
        requests=data["requests"],
        requests_per_s=round(data["requests"] / duration, 1),
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        p999_ms=latency["p999"] / 1000,
        max_ms=latency["max"] / 1000,
        mean_ms=round(latency["mean"] / 1000, 3),
        statuses=data["statuses"],
        socket_errors={k: v for k, v in data["errors"].items() if k != "status"},
        non_2xx_3xx=data["errors"]["status"],
        error_samples={status: " | ".join(messages) for status, messages in samples.items()},
        cpu=cpu,
    )


def percentile(data: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def pytest_benchmark(test_file: str, raw_name: str) -> dict[str, dict[str, Any]]:
    """Runs a bench/ pytest-benchmark file; per benchmark: calls, p50/p99/mean/max in µs.

    pytest-benchmark has no percentile column, so they come from the per-round timings
    in ``--benchmark-json`` (the benchmarks use one call per round).
    """
    raw = RESULTS / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    report = raw / f"{raw_name}.json"
    command = [PYTHON, "-m", "pytest", str(BENCH / test_file), "-q", "-p", "no:cacheprovider"]
    command += [f"--benchmark-json={report}", "--benchmark-columns=min,median,mean,max,rounds"]
    subprocess.run(command, cwd=REPO, check=True)
    figures = {}
    for bench in json.loads(report.read_text())["benchmarks"]:
        data_us = [t * 1e6 for t in bench["stats"]["data"]]
        figures[bench["name"]] = {
            "calls": len(data_us),
            "p50_us": round(percentile(data_us, 50), 2),
            "p99_us": round(percentile(data_us, 99), 2),
            "mean_us": round(sum(data_us) / len(data_us), 2),
            "max_us": round(max(data_us), 1),
            **bench.get("extra_info", {}),
        }
    return figures
