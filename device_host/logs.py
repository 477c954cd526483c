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
    """Logs the first line per key in each window; later ones are counted and summarised."""

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
        self._opened: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, message: str) -> None:
        self.log(logging.WARNING, key, message)

    def log(self, level: int, key: str, message: str) -> None:
        now = self._clock()
        with self._lock:
            opened, held_back = self._opened.get(key, (-self._window_s, 0))
            if now - opened < self._window_s:
                self._opened[key] = (opened, held_back + 1)
                return
            if len(self._opened) >= MAX_KEYS:
                self._opened.clear()
            self._opened[key] = (now, 0)
        if held_back:
            message += f" ({held_back} more like this in the last {self._window_s:.0f} s)"
        self._logger.log(level, "%s", escape_line(message))
