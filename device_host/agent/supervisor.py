"""Keeps a background loop alive: an unexpected exception restarts it after a back-off.

A device is visited rarely; an agent thread that died on one odd answer would leave it
off the fleet until someone noticed. The supervisor logs each distinct failure once, counts
the rest, and reports its state so /healthz can say the agent is not well.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0


class Supervisor:
    """Runs ``loop`` on its own thread until ``stop`` is set, restarting it when it raises.

    ``state`` is ``running``, ``backing-off`` (it raised; waiting to restart) or
    ``restarting`` (restarted, no full pass yet); healthy means running.
    """

    def __init__(self, name: str, loop: Callable[[], None], stop: threading.Event) -> None:
        self._name = name
        self._loop = loop
        self._stop = stop
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._lock = threading.Lock()
        self.state = "not-started"
        self.consecutive_failures = 0
        self.restarts = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self._logged: str | None = None

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    @property
    def healthy(self) -> bool:
        with self._lock:
            if self.state == "not-started" or self.state == "stopped":
                return True
            return self._thread.is_alive() and self.state == "running"

    def status(self) -> dict[str, object]:
        with self._lock:
            return {
                "state": self.state,
                "consecutive_failures": self.consecutive_failures,
                "restarts": self.restarts,
                "last_error": self.last_error,
                "last_error_at": self.last_error_at,
            }

    def progress(self) -> None:
        """Called by the loop after each full pass: it works again, whatever happened before."""
        with self._lock:
            self.state, self.consecutive_failures = "running", 0

    def _run(self) -> None:
        self._set("running")
        while not self._stop.is_set():
            try:
                self._loop()
            except Exception as exc:
                self._failed(exc)
                delay = min(FIRST_BACKOFF_S * 2 ** (self.consecutive_failures - 1), MAX_BACKOFF_S)
                if self._stop.wait(delay * random.uniform(0.8, 1.2)):
                    break
                with self._lock:
                    self.restarts += 1
                    self.state = "restarting"
                continue
            break
        self._set("stopped")

    def _failed(self, exc: Exception) -> None:
        error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.consecutive_failures += 1
            self.last_error, self.last_error_at = error, time.time()
            self.state = "backing-off"
            first = error != self._logged
            self._logged = error
        if first:
            log.exception("%s crashed (restarting with back-off): %s", self._name, error)
        else:
            log.debug("%s crashed again (%d in a row)", self._name, self.consecutive_failures)

    def _set(self, state: str) -> None:
        with self._lock:
            self.state = state
