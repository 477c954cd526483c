"""A bounded log of what happened to plugins, for /healthz, the control plane and the host log.

Every event also becomes one structured, escaped log line, at most one per plugin and kind
per minute (with a count of the rest): a plugin trapping in a loop cannot flood the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

from device_host.logs import OncePerWindow, structured
from fleet_common.wire.events import EventKind

log = logging.getLogger("device_host.plugins")
_QUIET = frozenset({EventKind.INSTALLED, EventKind.REMOVED})


@dataclass(frozen=True)
class PluginEvent:
    at: float
    plugin: str
    version: str
    kind: EventKind
    detail: str


class EventLog:
    """Recent events in memory, and listeners (the agent) that keep them durably."""

    def __init__(self, capacity: int = 200) -> None:
        self._events: deque[PluginEvent] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[PluginEvent], None]] = []
        self._log = OncePerWindow(log)

    def subscribe(self, listener: Callable[[PluginEvent], None]) -> None:
        self._listeners.append(listener)

    def add(self, plugin: str, version: str, kind: EventKind, detail: str = "") -> None:
        event = PluginEvent(time.time(), plugin, version, kind, detail)
        with self._lock:
            self._events.append(event)
        level = logging.INFO if kind in _QUIET else logging.WARNING
        line = structured(str(kind), plugin=plugin, version=version, detail=detail)
        self._log.log(level, f"{plugin}:{kind}", line)
        for listener in self._listeners:
            listener(event)

    def recent(self, limit: int = 50) -> list[dict[str, object]]:
        with self._lock:
            return [asdict(event) for event in list(self._events)[-limit:]]
