"""Benchmark 3: host restart to serving, with 5 plugins and the compiled cache warm.

    .venv/bin/python bench/bench_restart.py [--runs 8]

hyperfine times ``restart_probe.py start``: process start until /healthz says ``ok`` with
every plugin running (the probe polls every 10 ms; its own interpreter start is included).
Its untimed ``--prepare`` stops the previous run's host. The 5 plugins are distinct
components: the dashboard, lab, and hello plus two hello variants (name and greeting
edited). A 1-plugin host (the dashboard alone) is timed alongside for scale, and the
5-plugin host once more with its component files dropped from the page cache.

The probe leaves each host running for ``--prepare`` to stop, so the host outlives it;
this script registers itself as the child subreaper, so those hosts become its children
and are reaped here instead of lingering as zombies.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import harness

PR_SET_CHILD_SUBREAPER = 36
PROBE = harness.BENCH / "restart_probe.py"


def plugins_for_restart() -> list[Path]:
    variants = [
        harness.built_plugin(
            "hello",
            label=f"hello-{n}",
            name=f"hello-{n}",
            replace={'GREETING = "': f'GREETING = "variant {n}: '},
        )
        for n in (2, 3)
    ]
    return [
        harness.built_plugin("dashboard"),
        harness.built_plugin("lab"),
        harness.built_plugin("hello"),
        *variants,
    ]


def prepare_host(name: str, plugins: list[Path]) -> tuple[harness.Host, Path]:
    host = harness.Host(harness.fresh_workdir(name))
    for plugin in plugins:
        harness.place_plugin(plugin, host.plugins_dir)
    return host, host.write_config()


WARM = "5 plugins"
ONE = "1 plugin (dashboard)"
COLD = "5 plugins, component files evicted from the page cache"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    plugins = plugins_for_restart()
    shas = {harness.sha256_of(harness.component_of(p)) for p in plugins}
    if len(shas) != len(plugins):
        raise SystemExit("the restart plugins are not 5 distinct components")
    harness.precompile(*plugins)

    pidfile = harness.WORK / "restart.pid"
    timings = harness.WORK / "restart_timings.jsonl"
    timings.unlink(missing_ok=True)
    stop = f"{sys.executable} {PROBE} stop {pidfile}"
    hyperfine_cases: list[str] = []
    configs = {}
    for index, (title, case_plugins) in enumerate(
        {WARM: plugins, ONE: plugins[:1], COLD: plugins}.items()
    ):
        host, config = prepare_host(f"restart_{index}", case_plugins)
        configs[str(config)] = title
        probe = [sys.executable, str(PROBE), "start", str(config), host.url]
        probe += [str(len(case_plugins)), str(pidfile), str(timings)]
        prepare = stop if title != COLD else f"{stop} {harness.COMPILED} {host.plugins_dir}"
        hyperfine_cases += [f"--prepare={prepare}", "-n", title, " ".join(probe)]
    export = harness.RESULTS / "raw" / "restart_hyperfine.json"
    export.parent.mkdir(parents=True, exist_ok=True)

    quiet = harness.wait_for_quiet()
    load = harness.load_before()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    meter = harness.CpuMeter()
    try:
        subprocess.run(
            [
                "hyperfine",
                "--shell=none",
                "--ignore-failure",
                f"--runs={args.runs}",
                "--warmup=1",
                f"--export-json={export}",
                *hyperfine_cases,
            ],
            check=True,
        )
    finally:
        subprocess.run(stop.split(), check=False)
        _reap_children()
    cpu = meter.stop()

    probes: dict[str, list[dict[str, object]]] = {}
    for line in timings.read_text().splitlines():
        entry = json.loads(line)
        probes.setdefault(configs[entry["config"]], []).append(entry)
    rows, figures = [], {}
    for result in json.loads(export.read_text())["results"]:
        title = result["command"]
        timed = probes[title][1:]  # the first is hyperfine's warm-up run
        served = [float(e["seconds"]) for e in timed if e["ok"]]  # type: ignore[arg-type]
        figures[title] = {
            "runs": len(result["times"]),
            "mean_s": result["mean"],
            "stddev_s": result["stddev"],
            "median_s": result["median"],
            "min_s": result["min"],
            "max_s": result["max"],
            "probe_median_s": statistics.median(served) if served else None,
            "refusals": [e["refused"] for e in timed if not e["ok"]],
        }
        f = figures[title]
        probe_median = f"{f['probe_median_s']:.3f}" if served else "n/a"
        rows.append(
            [
                title,
                f["runs"],
                f"{f['mean_s']:.3f} +/- {f['stddev_s']:.3f}",
                f"{f['median_s']:.3f}",
                f"{f['min_s']:.3f} to {f['max_s']:.3f}",
                probe_median,
                len(f["refusals"]),
            ]
        )
    per_plugin = (figures[WARM]["median_s"] - figures[ONE]["median_s"]) / 4
    refusals = [
        f"- {title}: {'; '.join(r for refusal in f['refusals'] for r in refusal)}"
        for title, f in figures.items()
        if f["refusals"]
    ]
    refused = (
        ("Runs where the host refused a plugin:\n\n" + "\n".join(refusals)) if refusals else ""
    )
    header = ["Host", "runs", "mean +/- sd (s)", "median (s)", "range (s)", "probe median (s)"]
    header.append("runs with a plugin refused")
    section = f"""## 3. Restart to serving, 5 plugins, compiled cache warm (hyperfine)

`hyperfine --runs {args.runs} --warmup 1`: process start → /healthz `ok` with every plugin
running (5 distinct components: dashboard, lab, hello, hello-2, hello-3; each loaded from
the compiled cache, instantiated and self-checked). "probe median": the probe's own
Popen → ok time, without its interpreter start, over the runs that served every plugin.
The last row evicts the `.wasm` and `.cwasm` files (only those) from the page cache
before each run, as after a reboot; Python and its libraries stay cached.

{harness.table(header, rows)}

Each plugin beyond the first adds {per_plugin * 1000:.0f} ms (difference of the medians / 4).
CPU during the runs: ours {cpu["ours_pct"]:.0f} %, other processes {cpu["others_pct"]:.0f} %
of one core.

{refused}
"""
    data = {"load_before": load, "busy_before": quiet, "figures": figures, "cpu": cpu}
    harness.save("restart", data, section)
    return 0


def _reap_children() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


if __name__ == "__main__":
    sys.exit(main())
