"""Benchmark 1: the dashboard page's requests/s and latency, sandboxed vs native vs fresh.

    .venv/bin/python bench/bench_dashboard.py [--duration 10] [--connections 8] [--rounds 1]

One host process (bench/native_server.py: the real DeviceHost and app plus two bench
routes) serves the dashboard plugin three ways, and wrk loads each in turn:

* sandbox: ``/``, the product path (pooled instances, ``pool_size`` 2);
* native: ``/bench/native/``, the same ``app.py`` run by this CPython;
* fresh: ``/bench/fresh/``, a new instance per request, closed afterwards.

With ``--rounds`` above 1 the routes are interleaved and each figure is the median.
Then test_dashboard_call.py (pytest-benchmark) times single calls without HTTP, to show
where the sandbox's time goes (``--skip-in-process`` leaves it out).
"""

from __future__ import annotations

import argparse
import statistics
import sys

import harness

ROUTES = {
    "sandbox": ("/", "Sandbox, pooled instances (`/`)"),
    "native": ("/bench/native/", "Native CPython, same app.py (`/bench/native/`)"),
    "fresh": ("/bench/fresh/", "Sandbox, fresh instance per request (`/bench/fresh/`)"),
}
METRICS = ("requests_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms")
CPU = ("ours_pct", "others_pct")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of unrecorded load first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--skip-in-process", action="store_true")
    args = parser.parse_args()

    dashboard = harness.built_plugin("dashboard")
    harness.precompile(dashboard)
    quiet = harness.wait_for_quiet()
    load = harness.load_before()
    runs: dict[str, list[harness.WrkRun]] = {route: [] for route in ROUTES}
    with harness.Host(harness.fresh_workdir("dashboard"), native=True) as host:
        harness.place_plugin(dashboard, host.plugins_dir)
        host.start()
        _check_same_page(host)
        for round_index in range(args.rounds):
            for route, (path, _) in ROUTES.items():
                url = host.url + path
                harness.wrk(url, duration_s=args.warmup, connections=args.connections)
                run = harness.wrk(
                    url,
                    duration_s=args.duration,
                    threads=args.threads,
                    connections=args.connections,
                    raw_name=f"dashboard_{route}_{round_index + 1}",
                    host_pid=host.pid,
                )
                print(
                    f"{route}: {run.requests_per_s} req/s, p50 {run.p50_ms} ms, p99 {run.p99_ms} ms"
                )
                runs[route].append(run)
        instances = host.plugin("dashboard")["instances"]

    figures = {
        route: {m: statistics.median(getattr(r, m) for r in route_runs) for m in METRICS}
        | {c: statistics.median(r.cpu[c] for r in route_runs) for c in CPU}
        | {
            "failed": sum(r.failed for r in route_runs),
            "requests": sum(r.requests for r in route_runs),
        }
        for route, route_runs in runs.items()
    }
    calls = {}
    if not args.skip_in_process:
        calls = harness.pytest_benchmark(
            "test_dashboard_call.py", "dashboard_call_pytest_benchmark"
        )
    section = _section(figures, args, instances) + _in_process_section(calls)
    data = {"load_before": load, "busy_before": quiet, "figures": figures, "runs": runs}
    data["in_process_calls"] = calls
    harness.save("dashboard", data, section)
    return 0


def _check_same_page(host: harness.Host) -> None:
    """The three routes must serve the same page, or the comparison means nothing."""
    pages = {route: harness.http_get(host.url + path) for route, (path, _) in ROUTES.items()}
    sizes = {route: len(body) for route, (_, body) in pages.items()}
    for route, (status, body) in pages.items():
        if status != 200 or b"<h1>" not in body:
            raise SystemExit(f"{route} did not serve the dashboard: {status} {body[:200]!r}")
    if max(sizes.values()) - min(sizes.values()) > 16:
        raise SystemExit(f"the routes serve different pages: sizes {sizes}")


def _section(figures: dict[str, dict[str, float]], args: argparse.Namespace, instances: int) -> str:
    rows = []
    for route, (_, title) in ROUTES.items():
        f = figures[route]
        rows.append(
            [
                title,
                f"{f['requests_per_s']:.0f}",
                f"{f['p50_ms']:.1f}",
                f"{f['p90_ms']:.1f}",
                f"{f['p99_ms']:.1f}",
                f"{f['max_ms']:.1f}",
                int(f["failed"]),
                f"{f['ours_pct']:.0f} / {f['others_pct']:.0f}",
            ]
        )
    sandbox, native, fresh = figures["sandbox"], figures["native"], figures["fresh"]
    ratios = [
        [
            "sandbox / native",
            harness.ratio(sandbox["requests_per_s"], native["requests_per_s"]),
            harness.ratio(sandbox["p50_ms"], native["p50_ms"]),
            harness.ratio(sandbox["p99_ms"], native["p99_ms"]),
        ],
        [
            "fresh / pooled",
            harness.ratio(fresh["requests_per_s"], sandbox["requests_per_s"]),
            harness.ratio(fresh["p50_ms"], sandbox["p50_ms"]),
            harness.ratio(fresh["p99_ms"], sandbox["p99_ms"]),
        ],
    ]
    header = ["Route", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "failed"]
    header.append("CPU % ours / others")
    rounds = f", median of {args.rounds} interleaved rounds" if args.rounds > 1 else ""
    return f"""## 1. Dashboard page: requests/s and latency (wrk)

`wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency` per route after
{args.warmup} s of warm-up{rounds}; one host process (`bench/native_server.py`), plugin
pool_size 2 ({instances} instances live at the end), simulated DHT22.

{harness.table(header, rows)}

{harness.table(["Ratio", "req/s", "p50", "p99"], ratios)}

"CPU % ours / others": CPU used during the run, in % of one core (200 = both cores), by
the host plus wrk, and by every other process on the machine (noise).
"""


def _in_process_section(calls: dict[str, dict[str, float]]) -> str:
    if not calls:
        return ""
    rows = []
    for path in ("/", "/reading.json"):
        sandboxed, native = calls[f"test_sandboxed[{path}]"], calls[f"test_native[{path}]"]
        rows.append(
            [
                f"`{path}`",
                sandboxed["body_bytes"],
                f"{sandboxed['p50_us']:.0f}",
                f"{sandboxed['p99_us']:.0f}",
                f"{native['p50_us']:.0f}",
                f"{native['p99_us']:.0f}",
                harness.ratio(sandboxed["p50_us"], native["p50_us"]),
            ]
        )
    page, small = calls["test_sandboxed[/]"], calls["test_sandboxed[/reading.json]"]
    extra_bytes = page["body_bytes"] - small["body_bytes"]
    per_kb = (page["p50_us"] - small["p50_us"]) / extra_bytes * 1024
    header = ["Path", "body bytes", "sandbox p50 µs", "sandbox p99 µs", "native p50 µs"]
    header += ["native p99 µs", "p50 sandbox/native"]
    return f"""
In-process, one call without HTTP (pytest-benchmark, {page["calls"]} calls each; sandbox =
`LoadedVersion.respond` on a pooled instance, native = the same `app.py`):

{harness.table(header, rows)}

Both paths read the sensor and build the reply. In the sandbox the page costs
{(page["p50_us"] - small["p50_us"]) / 1000:.2f} ms more than `/reading.json` at p50
({per_kb / 1000:.2f} ms per extra KiB of body: rendering in the guest plus the body crossing
the component boundary, which wasmtime-py converts in Python while holding the GIL).
"""


if __name__ == "__main__":
    sys.exit(main())
