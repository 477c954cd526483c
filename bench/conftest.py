"""Keeps the benchmarks out of test runs: they are collected only when bench/ is named.

``pytest`` alone already looks only in ``tests/`` (``testpaths``); this also covers
``pytest .`` and the like. Run them with ``pytest bench/test_sensor_call.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    root = config.invocation_params.dir
    for arg in config.args:
        target = (root / arg.split("::", 1)[0]).resolve()
        if target == BENCH or BENCH in target.parents:
            return None
    return True
