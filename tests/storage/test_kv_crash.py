"""A kill -9 in the middle of writing loses at most the last flush interval, never the file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support import REPO

FLUSH_INTERVAL_S = 0.1
SLACK_S = 2.0
"""A flush may be late on a loaded machine; a write older than interval + slack must be on disk."""
VALUE_BYTES = 64 << 10

WRITER = f"""
import sys, time
from pathlib import Path
from device_host.storage.kv import KvStores

kv = KvStores(Path(sys.argv[1]), flush_interval_s={FLUSH_INTERVAL_S}).for_plugin(
    "writer", 1 << 20, 1 << 40
)
n = 0
while True:
    n += 1
    assert kv.set("counter", f"{{n:010d}}" + "x" * {VALUE_BYTES}) is None
    print(n, time.monotonic(), flush=True)
    time.sleep(0.002)
"""


def _run_and_kill(directory: Path, after_s: float) -> tuple[list[tuple[int, float]], float]:
    """Runs the writer, SIGKILLs it after ``after_s``; returns what it reported and when."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    reported: list[tuple[int, float]] = []

    def collect() -> None:
        assert writer.stdout is not None
        for line in writer.stdout:
            if line.endswith("\n"):  # the kill may tear the last line: it does not count
                number, at = line.split()
                reported.append((int(number), float(at)))

    reader = threading.Thread(target=collect)
    reader.start()
    deadline = time.monotonic() + 30
    while (not reported or time.monotonic() - reported[0][1] < after_s) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.01)
    killed_at = time.monotonic()
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    reader.join()
    return reported, killed_at


def test_a_killed_writer_leaves_a_whole_recent_value_on_disk(tmp_path):
    for attempt, after_s in enumerate((2.5, 2.73, 3.1)):
        directory = tmp_path / f"run-{attempt}"
        reported, killed_at = _run_and_kill(directory, after_s)

        stored = json.loads((directory / "writer.json").read_text())["values"]["counter"]
        number = int(stored[:10])
        expected_before = max(
            n for n, at in reported if at <= killed_at - FLUSH_INTERVAL_S - SLACK_S
        )
        assert stored == f"{number:010d}" + "x" * VALUE_BYTES
        assert expected_before <= number <= reported[-1][0] + 1
