"""Where the benchmarks read plugins from and write results to."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
REPO = BENCH.parent
RESULTS = BENCH / "results"
WORK = RESULTS / "work"
COMPILED = WORK / "compiled"
"""Compiled components of every benchmark; content-keyed, so it stays warm between runs."""
PYTHON = sys.executable
TEST_PLUGINS = REPO / "tests" / "plugins"
EXAMPLE_PLUGINS = REPO / "plugins"
WRK_SCRIPT = BENCH / "wrk_report.lua"
