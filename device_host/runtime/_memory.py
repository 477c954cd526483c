"""How much memory each instance's linear memory really uses, read from /proc.

wasmtime-py reports no memory figures for a Store. Each linear memory lives in its own
multi-GiB address reservation, so the host notes every reservation that appeared while an
instance was created (a component may define several memories) and later sums the
resident pages inside them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
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


def _reservations(spans: set[Span]) -> list[Span]:
    """Runs of adjacent mappings that together span at least a GiB: linear memories."""
    runs: list[Span] = []
    for start, end in sorted(spans):
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    return [run for run in runs if run[1] - run[0] >= _RESERVATION_MIN]


def _uncovered(spans: list[Span], covered: list[Span]) -> list[Span]:
    """The parts of ``spans`` that no span in ``covered`` contains (both sorted)."""
    result: list[Span] = []
    for start, end in spans:
        cursor = start
        for lo, hi in covered:
            if hi <= cursor or lo >= end:
                continue
            if lo > cursor:
                result.append((cursor, lo))
            cursor = max(cursor, hi)
        if cursor < end:
            result.append((cursor, end))
    return result


class ReservationWatch:
    """Finds the linear-memory reservations that appear while the block runs (serialised).

    The kernel merges a new reservation with an adjacent older one into one mapping, so
    only address ranges that no mapping covered before count as new.
    """

    def __enter__(self) -> ReservationWatch:
        _lock.acquire()
        try:
            self._before = sorted(_mappings())
        except OSError:
            self._before = []
        self.spans: list[Span] = []
        return self

    def __exit__(self, *_: object) -> None:
        try:
            after = sorted(set(_mappings()) - set(self._before))
            self.spans = _reservations(set(_uncovered(after, self._before)))
        except OSError:
            self.spans = []
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


def give_back_heap() -> None:
    """Returns freed heap pages to the kernel (glibc ``malloc_trim``).

    What wasmtime frees when a Store is dropped (WASI handle tables, instance state: a
    guest can make a Store hold ~70 MB of them) stays in glibc's arenas otherwise, and the
    host's RSS would keep the high-water mark of its worst plugin.
    """
    if _libc is not None:
        _libc.malloc_trim(0)


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_libc = _load_libc()
