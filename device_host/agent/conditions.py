"""Problems the agent keeps running into, logged once per condition with a count.

A device that cannot reach its control plane, or keeps getting a corrupted download,
would otherwise write the same line every few seconds for days; an operator wants the
first occurrence, how often it repeated, and when it cleared.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class Condition:
    message: str
    count: int
    first_at: float
    last_at: float


class Conditions:
    """Open problems by key; each is logged when it starts and when it clears."""

    def __init__(self) -> None:
        self._open: dict[str, Condition] = {}
        self._lock = threading.Lock()

    def report(self, key: str, message: str, level: int = logging.WARNING) -> bool:
        """Counts one occurrence; True (and logged) only when the condition is new."""
        now = time.time()
        with self._lock:
            condition = self._open.get(key)
            if condition is not None:
                condition.count += 1
                condition.last_at = now
                condition.message = message
                return False
            self._open[key] = Condition(message, 1, now, now)
        log.log(level, "%s: %s", key, message)
        return True

    def clear(self, key: str) -> None:
        with self._lock:
            condition = self._open.pop(key, None)
        if condition is not None:
            log.info("%s: cleared after %d occurrence(s)", key, condition.count)

    def clear_prefix(self, prefix: str) -> None:
        with self._lock:
            keys = [key for key in self._open if key.startswith(prefix)]
        for key in keys:
            self.clear(key)

    def snapshot(self) -> dict[str, dict[str, object]]:
        with self._lock:
            return {
                key: {
                    "message": c.message,
                    "count": c.count,
                    "first_at": c.first_at,
                    "last_at": c.last_at,
                }
                for key, c in self._open.items()
            }
