"""Benchmark 5 runner: pytest-benchmark on test_sensor_call.py, then p50/p99 per layer.

.venv/bin/python bench/bench_sensor.py
"""

from __future__ import annotations

import sys

import harness

LAYERS = {
    "test_sampler_lookup": "`sampler.lookup()` (the host function's cache read)",
    "test_dht22_host_function": "`dht22.read` host function as linked (lookup + WIT record)",
    "test_plugin_sensor_call": ("lab plugin `/sensor/4` in-process (`LoadedVersion.respond`)"),
}


def main() -> int:
    quiet = harness.wait_for_quiet()
    load = harness.load_before()
    meter = harness.CpuMeter()
    by_name = harness.pytest_benchmark("test_sensor_call.py", "sensor_call_pytest_benchmark")
    cpu = meter.stop()
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for name, stats in by_name.items():
        layer, _, state = name.partition("[")
        figures.setdefault(layer, {})[state.rstrip("]")] = stats
    rows = []
    for layer, title in LAYERS.items():
        healthy, hung = figures[layer]["healthy"], figures[layer]["hung"]
        rows.append(
            [
                title,
                healthy["calls"],
                f"{healthy['p50_us']:.1f}",
                f"{healthy['p99_us']:.1f}",
                f"{hung['p50_us']:.1f}",
                f"{hung['p99_us']:.1f}",
                f"{max(healthy['max_us'], hung['max_us']):.0f}",
                harness.ratio(hung["p99_us"], healthy["p99_us"]),
            ]
        )
    header = ["Layer", "calls", "healthy p50", "healthy p99", "hung p50", "hung p99"]
    results = harness.table([*header, "max (either)", "p99 hung/healthy"], rows)
    section = f"""## 5. DHT22 read from a plugin: sensor healthy vs hung (pytest-benchmark)

One call per round, after warm-up; times in µs. "Hung": the driver blocked after some good
readings and the cached reading went stale, so every read answers `timeout` without waiting
(the sampler's read timeout is 200 ms: a call that waited on the sensor would show it).

{results}

CPU during the run: this benchmark {cpu["ours_pct"]:.0f} %, other processes
{cpu["others_pct"]:.0f} % of one core. Raw pytest-benchmark output:
`bench/results/raw/sensor_call_pytest_benchmark.json`.
"""
    data = {"load_before": load, "busy_before": quiet, "cpu": cpu, "figures": figures}
    harness.save("sensor_call", data, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
