"""Log lines a hostile plugin or peer cannot multiply or forge: keyed, rate-limited, escaped.

A plugin that traps in a loop, or a sensor plugin that sends bad readings every poll, must
cost the log one line per condition and window, plus a count of what was held back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

_CONTROL = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    ord("\\"): "\\\\",
}
_CONTROL.update({code: f"\\u{code:04x}" for code in (0x85, 0x2028, 0x2029)})


def escape_line(text: str) -> str:
    """``text`` with line breaks, control characters and backslashes escaped: one log line."""
    return text.translate(_CONTROL)


WINDOW_S = 60.0
MAX_KEYS = 1024
"""Distinct conditions remembered; a flood of new keys resets the memory, not the host."""


def structured(event: str, **fields: object) -> str:
    """``event key=value ...`` with every value escaped onto one line and quoted if needed."""
    parts = [event]
    for key, value in fields.items():
        text = escape_line(str(value))
        if not text or any(c in text for c in ' "='):
            text = '"' + text.replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


class OncePerWindow:
    """Logs the first line per key in each window; later ones are only counted.

    Each logged line after the first says how often the condition occurred and since when,
    so a condition that goes on for days costs one line a minute.
    """

    def __init__(
        self,
        logger: logging.Logger,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, float, int]] = {}
        """Key: (wall-clock time of the first occurrence, when last logged, occurrences)."""

    def warning(self, key: str, message: str) -> None:
        self.log(logging.WARNING, key, message)

    def hit(self, condition: str) -> None:
        """Counts a recurring condition whose text is its key, always with its count."""
        self.log(logging.WARNING, condition, condition, always_count=True)

    def log(self, level: int, key: str, message: str, *, always_count: bool = False) -> None:
        now = self._clock()
        with self._lock:
            first, logged, count = self._seen.get(key, (time.time(), -self._window_s, 0))
            count += 1
            due = now - logged >= self._window_s
            if len(self._seen) >= MAX_KEYS and key not in self._seen:
                self._seen.clear()
            self._seen[key] = (first, now if due else logged, count)
        if not due:
            return
        if count > 1 or always_count:
            since = time.strftime("%H:%M:%S", time.localtime(first))
            message += f" ({count} times since {since})"
        self._logger.log(level, "%s", escape_line(message))
