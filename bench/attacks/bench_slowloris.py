"""Slowloris on :3000: `/` and `/healthz` latency and failures with and without 2,000 half-open
connections (a bounded Python client; 127.0.0.1 only).

.venv/bin/python bench/attacks/bench_slowloris.py [--seconds 15] [--half-open 2000] [--nofile 1024]

The host starts with a soft open-files limit of ``--nofile`` (1024 is systemd's default, as a
device host on a Pi gets it), which is what made 1,100 half-open connections fatal before.
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2])]

import harness  # noqa: E402

from tests.http.attacks import Slowloris  # noqa: E402

CLIENTS = 4


def _load(url: str, seconds: float) -> tuple[list[float], int]:
    """CLIENTS threads, a new connection per request (as browsers on a LAN mostly are)."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    response.read()
                    ok = response.status == 200
            except OSError:
                ok = False
            with lock:
                if ok:
                    latencies.append((time.monotonic() - started) * 1000)
                else:
                    failures[0] += 1

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failures[0]


def _row(label: str, path: str, latencies: list[float], failures: int) -> list[object]:
    p50 = harness.percentile(latencies, 50) if latencies else float("nan")
    p99 = harness.percentile(latencies, 99) if latencies else float("nan")
    return [label, path, len(latencies), failures, f"{p50:.1f}", f"{p99:.1f}"]


def _start_with_open_files_limit(host: harness.Host, soft: int) -> None:
    """The host inherits ``soft``; this process gets its own limit back for the attack."""
    own = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, own[1]))
    try:
        host.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, own)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--half-open", type=int, default=2000)
    parser.add_argument("--nofile", type=int, default=1024)
    args = parser.parse_args()
    load = harness.load_before()
    workdir = harness.fresh_workdir("slowloris")
    host = harness.Host(workdir)
    harness.place_plugin(harness.built_plugin("dashboard"), host.plugins_dir)
    rows: list[list[object]] = []
    figures: dict[str, object] = {
        "half_open": args.half_open,
        "seconds": args.seconds,
        "nofile": args.nofile,
    }
    with host:
        _start_with_open_files_limit(host, args.nofile)
        for path in ("/", "/healthz"):
            latencies, failures = _load(host.url + path, args.seconds)
            rows.append(_row("no attack", path, latencies, failures))
        log_before = (workdir / "host.log").stat().st_size
        with Slowloris(host.port, args.half_open, seconds=4 * args.seconds + 30) as attack:
            for path in ("/", "/healthz"):
                latencies, failures = _load(host.url + path, args.seconds)
                rows.append(_row(f"{args.half_open} half-open", path, latencies, failures))
        figures["attack_connections_opened"] = attack.opened
        figures["closed_by_host"] = attack.closed_by_server
        figures["log_bytes_during_attack"] = (workdir / "host.log").stat().st_size - log_before
    figures["rows"] = rows
    figures["load_before"] = load
    header = ["", "path", "answered", "failed", "p50 ms", "p99 ms"]
    section = f"""## Slowloris on :3000

{CLIENTS} clients, a new connection per request, {args.seconds:.0f} s per row, against the
example dashboard at `/`, host started with a soft open-files limit of {args.nofile}; the
attack keeps {args.half_open} connections that sent part of a request line and headers,
reopening each one the host closes
({figures["attack_connections_opened"]} opened, {figures["closed_by_host"]} closed by the
host). Host log during the attack: {figures["log_bytes_during_attack"]} bytes.

{harness.table(header, rows)}
"""
    harness.save("slowloris", figures, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
