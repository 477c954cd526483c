"""The plugins' recent output, kept for heartbeats: a bounded ring acknowledged like events.

Every line a plugin gets into the host log (within its line budget) is also numbered here.
A heartbeat carries the lines the control plane has not acknowledged, at most
`MAX_LOG_LINES`; when more are waiting, or the ring overwrote some before they were sent,
the oldest go and one line in their place says how many.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from fleet_common.wire.health import DROPPED_LINES_PLUGIN, MAX_LOG_LINES, MAX_LOG_TEXT, LogLine

CAPACITY = 500


@dataclass(frozen=True)
class TailBatch:
    """The lines one heartbeat carries; acknowledging it covers every line up to ``through``."""

    lines: tuple[LogLine, ...]
    through: int


class LogTail:
    """One host's ring of plugin output lines; thread-safe (guests write from many threads)."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._lines: deque[tuple[int, LogLine]] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._written = 0
        """How many lines were ever added; the newest is number ``_written``."""
        self._acknowledged = 0

    def add(self, plugin: str, stream: str, level: str, text: str) -> None:
        """Keeps one line, already escaped by the caller; cut to `MAX_LOG_TEXT`."""
        line = LogLine(datetime.now(UTC), plugin, stream, level, text[:MAX_LOG_TEXT])
        with self._lock:
            self._written += 1
            self._lines.append((self._written, line))

    def pending(self, limit: int = MAX_LOG_LINES) -> TailBatch:
        """The newest unacknowledged lines, oldest first, with a note of any left out."""
        with self._lock:
            through, acknowledged = self._written, self._acknowledged
            unsent = [line for number, line in self._lines if number > acknowledged]
        missing = through - acknowledged - len(unsent)
        if missing or len(unsent) > limit:
            kept = unsent[len(unsent) - (limit - 1) :] if len(unsent) >= limit else unsent
            dropped = missing + len(unsent) - len(kept)
            note = LogLine(
                kept[0].at if kept else datetime.now(UTC),
                DROPPED_LINES_PLUGIN,
                "log",
                "warning",
                f"{dropped} older plugin log lines were dropped before this heartbeat",
            )
            unsent = [note, *kept]
        return TailBatch(tuple(unsent), through)

    def acknowledge(self, batch: TailBatch) -> None:
        """The control plane stored ``batch``: its lines, and those it said were dropped, go."""
        with self._lock:
            self._acknowledged = max(self._acknowledged, batch.through)
