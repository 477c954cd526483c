"""Benchmark 2: failed requests and latency while the dashboard is hot-swapped 20 times.

    .venv/bin/python bench/bench_hot_swap.py [--swaps 20] [--pace 1.5] [--connections 8]
    .venv/bin/python bench/bench_hot_swap.py --swaps 10 --pace 5.6 --connections 64  # 60 s

A third window swaps in a *broken* release (it passes its self-check, then spins in every
``handle()`` until its budget runs out) and keeps loading until the host has gone back to
the previous version on its own: with probation, the previous version answers every GET
the broken one cannot.

wrk loads the dashboard (``/``) for a fixed window twice on one host: once undisturbed
(the baseline), then while this script swaps the plugin's component file ``--swaps``
times, alternating between two prebuilt versions. Each swap writes the new component
and manifest beside the old ones and renames them into place (as a deployment does),
then waits until /healthz reports the new version's sha256 as running. Swaps start every
``--pace`` seconds; both versions are in the compiled cache beforehand.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import harness

LEAD_S = 2.0
TAIL_S = 2.0
BROKEN_WINDOW_S = 10.0


@dataclass(frozen=True)
class Swap:
    version: str
    seconds_to_serving: float
    finished_at_s: float
    """Since the first swap began."""


def swap_in(built: Path, folder: Path) -> None:
    """Both files are written under temporary names first, then renamed over the old ones."""
    component = harness.component_of(built)
    staged = folder / f".{component.name}.incoming"
    shutil.copyfile(component, staged)
    staged_manifest = folder / ".manifest.toml.incoming"
    shutil.copyfile(built / "manifest.toml", staged_manifest)
    staged.replace(folder / component.name)
    staged_manifest.replace(folder / "manifest.toml")


def wait_for_sha(host: harness.Host, name: str, sha256: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        plugin = host.plugin(name)
        if plugin.get("sha256") == sha256 and plugin.get("state") == "running":
            return
        time.sleep(0.02)
    raise RuntimeError(f"{name} never served {sha256[:12]}; last: {host.plugin(name)}")


def run_swaps(
    host: harness.Host, folder: Path, versions: list[Path], count: int, pace: float
) -> list[Swap]:
    swaps = []
    start = time.monotonic()
    for index in range(count):
        time.sleep(max(0.0, start + index * pace - time.monotonic()))
        built = versions[(index + 1) % 2]
        sha = harness.sha256_of(harness.component_of(built))
        began = time.monotonic()
        swap_in(built, folder)
        wait_for_sha(host, "dashboard", sha)
        now = time.monotonic()
        swaps.append(Swap(built.name, now - began, now - start))
    return swaps


def run_broken_release(
    host: harness.Host, folder: Path, broken: Path, args: argparse.Namespace
) -> tuple[harness.WrkRun, float]:
    """Loads the page while a release that hangs in every request is swapped in.

    Returns the wrk run and how long the host took to go back to the previous version.
    """
    before = host.plugin("dashboard").get("sha256")
    duration = round(LEAD_S + BROKEN_WINDOW_S)
    with Loading(host, args, duration, "hot_swap_broken_release") as load_run:
        time.sleep(LEAD_S)
        began = time.monotonic()
        swap_in(broken, folder)
        wait_for_sha(host, "dashboard", harness.sha256_of(harness.component_of(broken)))
        wait_for_sha(host, "dashboard", str(before), timeout=BROKEN_WINDOW_S)
        reverted_after = time.monotonic() - began
    return load_run.result, reverted_after


class Loading:
    """wrk on the host's `/` in the background for ``duration`` s; `result` once the block ends."""

    def __init__(
        self, host: harness.Host, args: argparse.Namespace, duration: int, raw_name: str
    ) -> None:
        self._run = lambda: harness.wrk(
            host.url + "/",
            duration_s=duration,
            threads=args.threads,
            connections=args.connections,
            raw_name=raw_name,
            host_pid=host.pid,
        )
        self._outcome: list[harness.WrkRun] = []
        self._thread = threading.Thread(target=lambda: self._outcome.append(self._run()))

    def __enter__(self) -> Loading:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._thread.join()

    @property
    def result(self) -> harness.WrkRun:
        return self._outcome[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--pace", type=float, default=1.5, help="seconds between swap starts")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    args.duration = duration = round(LEAD_S + args.swaps * args.pace + TAIL_S)

    versions = [
        harness.built_plugin("dashboard", label="dashboard-a"),
        harness.built_plugin(
            "dashboard",
            label="dashboard-b",
            replace={'TITLE = "': 'TITLE = "(B) '},
            version="1.0.1",
        ),
        harness.built_plugin(
            "dashboard",
            label="dashboard-broken",
            replace={"        state = sensor_state()\n": "        while True:\n            pass\n"},
            version="1.0.2",
        ),
    ]
    harness.precompile(*versions)
    quiet = harness.wait_for_quiet()
    load = harness.load_before()
    with harness.Host(harness.fresh_workdir("hot_swap")) as host:
        folder = harness.place_plugin(versions[0], host.plugins_dir, folder="dashboard")
        host.start()
        harness.wrk(host.url + "/", duration_s=2, connections=args.connections)
        baseline = harness.wrk(
            host.url + "/",
            duration_s=duration,
            threads=args.threads,
            connections=args.connections,
            raw_name="hot_swap_baseline",
            host_pid=host.pid,
        )
        print(f"baseline: {baseline.requests} requests, {baseline.failed} failed")
        with Loading(host, args, duration, "hot_swap_swapping") as load_run:
            time.sleep(LEAD_S)
            swaps = run_swaps(host, folder, versions, args.swaps, args.pace)
        swapping = load_run.result
        final = host.plugin("dashboard")
        broken_run, revert_s = run_broken_release(host, folder, versions[2], args)
    last_done_s = LEAD_S + swaps[-1].finished_at_s
    figures = {
        "duration_s": duration,
        "swaps": len(swaps),
        "swap_seconds": [round(s.seconds_to_serving, 3) for s in swaps],
        "swap_median_s": round(statistics.median(s.seconds_to_serving for s in swaps), 3),
        "swap_max_s": round(max(s.seconds_to_serving for s in swaps), 3),
        "final_version": final.get("version"),
        "instances_at_end": final.get("instances"),
        "last_swap_done_at_s": round(last_done_s, 2),
        "broken_release_reverted_after_s": round(revert_s, 2),
    }
    section = _section(baseline, swapping, broken_run, figures, args, last_done_s)
    harness.save(
        "hot_swap",
        {"load_before": load, "busy_before": quiet, **figures}
        | {"baseline": baseline, "swapping": swapping, "broken_release": broken_run},
        section,
    )
    return 0


def _section(
    baseline: harness.WrkRun,
    swapping: harness.WrkRun,
    broken: harness.WrkRun,
    figures: dict[str, object],
    args: argparse.Namespace,
    last_done_s: float,
) -> str:
    swaps_done = figures["swaps"]

    def row(title: str, run: harness.WrkRun) -> list[object]:
        errors = ", ".join(f"{k} {v}" for k, v in run.socket_errors.items() if v) or "0"
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(run.statuses.items()))
        return [
            title,
            run.requests,
            run.non_2xx_3xx,
            errors,
            statuses,
            f"{run.p50_ms:.1f}",
            f"{run.p90_ms:.1f}",
            f"{run.p99_ms:.1f}",
            f"{run.p999_ms:.1f}",
            f"{run.max_ms:.1f}",
            f"{run.requests_per_s:.0f}",
            f"{run.cpu['ours_pct']:.0f} / {run.cpu['others_pct']:.0f}",
        ]

    header = ["Run", "requests", "non-2xx", "socket errors", "statuses"]
    header += ["p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "req/s", "CPU % ours / others"]
    rows = [
        row("no swaps (baseline)", baseline),
        row(f"{swaps_done} swaps", swapping),
        row("a broken release swapped in", broken),
    ]
    ratios = [
        "p99 swapping / baseline: " + harness.ratio(swapping.p99_ms, baseline.p99_ms),
        "req/s swapping / baseline: "
        + harness.ratio(swapping.requests_per_s, baseline.requests_per_s),
    ]
    messages = [
        f"- {title}, HTTP {status}: {message}"
        for title, run in (("baseline", baseline), ("swapping", swapping), ("broken", broken))
        for status, message in sorted(run.error_samples.items())
    ]
    what_failed = "What the failed replies said:\n\n" + "\n".join(messages) if messages else ""
    fits = "the last ended" if last_done_s <= args.duration else "WARNING: the last ended after"
    fits += f" {last_done_s:.1f} s into the {args.duration} s window"
    return f"""## 2. Hot swap under load: failed requests and latency (wrk)

`wrk -t{args.threads} -c{args.connections} -d{figures["duration_s"]}s` on the dashboard (`/`),
once without swaps and once while its component is replaced {swaps_done} times (one every
{args.pace} s, alternating two prebuilt versions, copy + rename, each awaited on /healthz;
compiled cache warm; watcher poll 0.2 s); {fits}.

{harness.table(header, rows)}

{"; ".join(ratios)}. The broken release (it spins in `handle()` until its budget runs
out; its self-check passes) was replaced by the previous version
{figures["broken_release_reverted_after_s"]} s after it was renamed into place; meanwhile
the previous version, kept warm for probation, answered every GET it could not.
Rename → new version serving (as seen on /healthz): median
{figures["swap_median_s"]} s, max {figures["swap_max_s"]} s. wrk counts a request as a
timeout after 5 s and does not include it in the latency figures.

{what_failed}
"""


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as error:
        print(error.stdout, error.stderr, file=sys.stderr)
        raise
