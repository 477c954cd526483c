"""What every benchmark shares: built plugins, host processes on loopback, load, results.

Benchmarks are measurements, never pass/fail tests: each script prints its figures and
writes ``bench/results/<name>.json`` (raw numbers) and ``<name>.md`` (its section of
``summary.md``). Everything they create lives under ``bench/results/work/``.
"""

from harness._cpu import CpuMeter, wait_for_quiet
from harness._hosts import Host, fresh_workdir, http_get, memory_of
from harness._load import WrkRun, percentile, pytest_benchmark, wrk
from harness._paths import BENCH, COMPILED, PYTHON, REPO, RESULTS, WORK
from harness._plugins import (
    built_plugin,
    component_of,
    place_plugin,
    precompile,
    prune_compiled,
    sha256_of,
)
from harness._results import load_before, machine, ratio, save, table, write_summary

__all__ = [
    "BENCH",
    "COMPILED",
    "PYTHON",
    "REPO",
    "RESULTS",
    "WORK",
    "CpuMeter",
    "Host",
    "WrkRun",
    "built_plugin",
    "component_of",
    "fresh_workdir",
    "http_get",
    "load_before",
    "machine",
    "memory_of",
    "percentile",
    "place_plugin",
    "precompile",
    "prune_compiled",
    "pytest_benchmark",
    "ratio",
    "save",
    "sha256_of",
    "table",
    "wait_for_quiet",
    "write_summary",
    "wrk",
]
