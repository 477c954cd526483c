"""How much memory each instance's linear memory really uses, read from /proc.

wasmtime-py reports no memory figures for a Store. Each instance's linear memory lives in
its own multi-GiB address reservation, so the host notes which reservation appeared when
an instance was created and later sums the resident pages inside it.
"""

from __future__ import annotations

import threading
from pathlib import Path

Span = tuple[int, int]

_RESERVATION_MIN = 1 << 30
_lock = threading.Lock()


def _mappings() -> list[Span]:
    spans = []
    with Path("/proc/self/maps").open() as maps:
        for line in maps:
            start, _, end = line.partition(" ")[0].partition("-")
            spans.append((int(start, 16), int(end, 16)))
    return spans


def _reservations(spans: list[Span]) -> list[Span]:
    """Runs of adjacent mappings that together span at least a GiB: linear memories."""
    runs: list[Span] = []
    for start, end in sorted(spans):
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return [run for run in runs if run[1] - run[0] >= _RESERVATION_MIN]


class ReservationWatch:
    """Finds the linear-memory reservation that appears while the block runs (serialised)."""

    def __enter__(self) -> ReservationWatch:
        _lock.acquire()
        try:
            self._before = set(_reservations(_mappings()))
        except OSError:
            self._before = set()
        self.span: Span | None = None
        return self

    def __exit__(self, *_: object) -> None:
        try:
            appeared = [r for r in _reservations(_mappings()) if r not in self._before]
            self.span = appeared[0] if len(appeared) == 1 else None
        except OSError:
            self.span = None
        finally:
            _lock.release()


def resident_bytes(spans: list[Span]) -> list[int]:
    """Resident bytes inside each span, from one read of /proc/self/smaps."""
    totals = [0] * len(spans)
    if not spans:
        return totals
    current: int | None = None
    try:
        with Path("/proc/self/smaps").open() as smaps:
            for line in smaps:
                if line[0].isdigit() or "a" <= line[0] <= "f":
                    start = int(line.partition("-")[0], 16)
                    current = next(
                        (i for i, (lo, hi) in enumerate(spans) if lo <= start < hi), None
                    )
                elif current is not None and line.startswith("Rss:"):
                    totals[current] += int(line.split()[1]) * 1024
    except OSError:
        pass
    return totals
