"""Benchmark 6: the dashboard (`/`) while other plugins misbehave, against no misbehaviour.

    .venv/bin/python bench/bench_plugin_attacks.py [--seconds 10] [--connections 8]

One host serves the dashboard at `/` plus the `lab` test plugin. wrk loads `/` for a fixed
window once undisturbed (the baseline, same run) and once under each of these, one at a time:

- **spinning ticks**: two automation plugins that spin for 9.5 s of their 10 s budget on
  every tick (the issue measured `/` at 1,697 → 723 req/s under this);
- **a flooded slow plugin**: 32 clients in a loop on a lab page that spins 150 ms per call;
- **large request bodies**: 8 clients in a loop POSTing 900 KB to the dashboard, which copies
  every body into the guest.

Reported per window: requests/s, p50/p99 and non-2xx of `/`, the ratios to the baseline, the
attack's own answers, and host RSS before and after.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import harness

SPINNER = {
    '        log.write(log.Level.INFO, f"tick at {now_ms}")': (
        "        import time\n"
        "        until = time.monotonic() + 9.5\n"
        "        while time.monotonic() < until:\n"
        "            pass"
    )
}
SPINNER_LIMITS = "\n[limits]\ntick-interval-s = 5\ncall-timeout-ms = 10000\n"


def _request(url: str, body: bytes | None) -> int:
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return 0


@contextmanager
def clients(count: int, url: str, body: bytes | None = None) -> Iterator[Counter[int]]:
    """``count`` threads requesting ``url`` back to back until the block ends."""
    answers: Counter[int] = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            status = _request(url, body)
            with lock:
                answers[status] += 1

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield answers
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)


@contextmanager
def spinning_ticks(host: harness.Host, spinners: list[Path]) -> Iterator[Counter[int]]:
    folders = [harness.place_plugin(built, host.plugins_dir) for built in spinners]
    names = [folder.name for folder in folders]
    deadline = time.monotonic() + 60
    while any(_state(host, name) != "running" for name in names):
        if time.monotonic() > deadline:
            raise RuntimeError("the spinning plugins never started")
        time.sleep(0.1)
    time.sleep(1.0)  # both are inside a tick now
    try:
        yield Counter()
    finally:
        for folder in folders:
            shutil.rmtree(folder)


def _state(host: harness.Host, name: str) -> object:
    try:
        return host.plugin(name).get("state")
    except KeyError:
        return None


def _mb(memory: dict[str, int]) -> str:
    return f"RSS {memory['Rss'] / 1024:.0f} MB, PSS {memory['Pss'] / 1024:.0f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()

    dashboard = harness.built_plugin("dashboard")
    lab = harness.built_plugin("lab")
    spinners = [
        harness.built_plugin("ticker", label=name, name=name, replace=SPINNER)
        for name in ("spinner-1", "spinner-2")
    ]
    for spinner in spinners:
        manifest = spinner / "manifest.toml"
        manifest.write_text(manifest.read_text().split("\n[limits]")[0] + SPINNER_LIMITS)
    harness.precompile(dashboard, lab, *spinners)
    quiet = harness.wait_for_quiet()
    load = harness.load_before()
    attacks: dict[str, Callable[[harness.Host], object]] = {
        "spinning ticks (2 plugins, 9.5 s per tick)": lambda host: spinning_ticks(host, spinners),
        "a slow plugin flooded (32 clients, 150 ms per call)": lambda host: clients(
            32, f"{host.url}/plugins/lab/spin/150"
        ),
        "900 KB POSTs to the dashboard (8 clients)": lambda host: clients(
            8, f"{host.url}/", b"a" * (900 << 10)
        ),
    }
    runs: dict[str, harness.WrkRun] = {}
    side: dict[str, dict[int, int]] = {}
    with harness.Host(harness.fresh_workdir("plugin_attacks")) as host:
        harness.place_plugin(dashboard, host.plugins_dir, folder="dashboard")
        harness.place_plugin(lab, host.plugins_dir, folder="lab")
        host.start()
        rss_before = _mb(harness.memory_of(host.pid))
        harness.wrk(host.url + "/", duration_s=2, connections=args.connections)
        runs["no attack (baseline)"] = harness.wrk(
            host.url + "/",
            duration_s=args.seconds,
            connections=args.connections,
            raw_name="plugin_attacks_baseline",
            host_pid=host.pid,
        )
        for title, attack in attacks.items():
            with attack(host) as answers:  # type: ignore[attr-defined]
                runs[title] = harness.wrk(
                    host.url + "/",
                    duration_s=args.seconds,
                    connections=args.connections,
                    raw_name=f"plugin_attacks_{len(runs)}",
                    host_pid=host.pid,
                )
            side[title] = dict(answers)
            time.sleep(1.0)
        rss_after = _mb(harness.memory_of(host.pid))
        lab_after = host.plugin("lab")
        dashboard_after = host.plugin("dashboard")
    baseline = runs["no attack (baseline)"]
    header = ["`/` while", "req/s", "p50 ms", "p99 ms", "non-2xx", "socket errors"]
    header += ["req/s vs baseline", "p99 vs baseline", "the attack's answers"]
    rows = []
    for title, run in runs.items():
        errors = sum(run.socket_errors.values())
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(side.get(title, {}).items())) or "-"
        rows.append(
            [
                title,
                f"{run.requests_per_s:.0f}",
                f"{run.p50_ms:.1f}",
                f"{run.p99_ms:.1f}",
                run.non_2xx_3xx,
                errors,
                harness.ratio(run.requests_per_s, baseline.requests_per_s),
                harness.ratio(run.p99_ms, baseline.p99_ms),
                answers,
            ]
        )
    figures = {
        "rss_before": rss_before,
        "rss_after": rss_after,
        "lab_traps": lab_after.get("trap_count"),
        "dashboard_traps": dashboard_after.get("trap_count"),
        "side_answers": side,
    }
    section = f"""## 6. `/` while other plugins misbehave (wrk)

`wrk -t2 -c{args.connections} -d{args.seconds}s` on the dashboard (`/`), undisturbed and
under each attack in turn, on one host.

{harness.table(header, rows)}

Host memory before / after all attacks: {rss_before} / {rss_after}. Traps during the run:
lab {figures["lab_traps"]}, dashboard {figures["dashboard_traps"]} (large bodies are the
host's work and are never charged to the plugin).
"""
    harness.save(
        "plugin_attacks",
        {"load_before": load, "busy_before": quiet, **figures, "runs": runs},
        section,
    )
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
