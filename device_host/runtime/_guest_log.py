"""Plugin output (log calls, stdout, stderr) into the host log: tagged, escaped, truncated,
rate-limited; and into the host's log tail, which heartbeats carry to the control plane.

A plugin may print in a loop; the host log must survive it, so each plugin gets a line
budget per window and a note of how many lines it lost. A plugin's text never starts a line
of its own: newlines and other control characters are escaped, so it cannot forge a host
log line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from device_host.log_tail import LogTail
from device_host.logs import escape_line

MAX_LINE_CHARS = 1000
LINES_PER_WINDOW = 100
WINDOW_S = 10.0
STDERR_TAIL_LINES = 30

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class GuestLog:
    """The host-side log of one plugin, shared by all its versions and instances."""

    def __init__(self, plugin: str, tail: LogTail | None = None) -> None:
        self._plugin = plugin
        self._tail = tail
        self._logger = logging.getLogger(f"plugin.{plugin}")
        self._lock = threading.Lock()
        self._window_start = time.monotonic()
        self._lines_in_window = 0
        self._dropped = 0

    def write(self, level: str, message: str, stream: str = "log") -> None:
        """Logs one message from the plugin unless it is over its line budget.

        ``stream`` is where it came from: ``log`` (the log import), ``stdout`` or ``stderr``.
        """
        now = time.monotonic()
        with self._lock:
            if now - self._window_start >= WINDOW_S:
                if self._dropped:
                    self._logger.warning("dropped %d lines over the log budget", self._dropped)
                self._window_start, self._lines_in_window, self._dropped = now, 0, 0
            if self._lines_in_window >= LINES_PER_WINDOW:
                self._dropped += 1
                return
            self._lines_in_window += 1
        text = escape_line(message[:MAX_LINE_CHARS])
        if len(message) > MAX_LINE_CHARS:
            text += f"... ({len(message)} chars)"
        if self._tail is not None:
            self._tail.add(self._plugin, stream, level if level in _LEVELS else "info", text)
        tagged = text if stream == "log" else f"[{stream}] {text}"
        self._logger.log(_LEVELS.get(level, logging.INFO), "%s", tagged)


class StreamLines:
    """Turns a guest's stdout or stderr chunks into lines for the log, keeping a short tail.

    wasmtime calls the sink from its own worker threads, hence the lock.
    """

    def __init__(self, log: GuestLog, level: str, stream: str) -> None:
        self._log = log
        self._level = level
        self._stream = stream
        self._pending = ""
        self._lock = threading.Lock()
        self.tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)

    def __call__(self, chunk: bytes) -> None:
        with self._lock:
            text = self._pending + bytes(chunk).decode("utf-8", errors="replace")
            *lines, self._pending = text.split("\n")
            if len(self._pending) > MAX_LINE_CHARS:
                lines.append(self._pending)
                self._pending = ""
            self.tail.extend(lines)
        for line in lines:
            if line.strip():
                self._log.write(self._level, line, self._stream)

    def last_error_line(self) -> str | None:
        """The exception line of the guest's most recent Python traceback, if it printed one.

        It is the first unindented line after ``Traceback (most recent call last):``.
        """
        with self._lock:
            lines = list(self.tail)
        starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
        if not starts:
            return None
        after = lines[starts[-1] + 1 :]
        for line in after:
            # CPython's last resort when it cannot format the exception (out of memory).
            if line.startswith("object type name:"):
                return line.partition(":")[2].strip()
        return next((line.strip() for line in after if line and not line[0].isspace()), None)
