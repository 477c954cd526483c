"""Atomic writes: a process killed at any moment leaves the old file or the new one, whole."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

from fleet_common.atomic import atomic_write_bytes

WRITER = """
import json, sys
from pathlib import Path
from fleet_common.atomic import atomic_write_bytes
path = Path(sys.argv[1])
n = 0
while True:
    n += 1
    atomic_write_bytes(path, json.dumps({"n": n, "pad": "x" * 400_000}).encode())
"""


def test_state_survives_kill_9_at_random_moments(tmp_path):
    path = tmp_path / "state.json"
    seen = []
    rng = random.Random(5)
    for _ in range(8):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
        time.sleep(0.3 + rng.random() * 0.3)
        writer.send_signal(signal.SIGKILL)
        writer.wait()

        state = json.loads(path.read_bytes())
        assert len(state["pad"]) == 400_000
        seen.append(state["n"])

    assert all(n >= 1 for n in seen)


def test_no_temporary_file_is_left_after_a_clean_write(tmp_path):
    atomic_write_bytes(tmp_path / "a.json", b"{}")

    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
