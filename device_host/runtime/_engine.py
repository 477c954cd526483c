"""The process's one wasmtime Engine, and the epoch ticker that enforces call deadlines."""

from __future__ import annotations

import threading

import wasmtime

from fleet_common.compiler.engines import engine_config
from fleet_common.compiler.settings import EngineSettings

EPOCH_TICK_S = 0.01
"""One epoch tick; a call's deadline is its time budget in ticks, so budgets are exact to ~10 ms."""


def create_engine(settings: EngineSettings) -> wasmtime.Engine:
    """Creates the Engine every plugin shares, configured exactly as the compilers for its class."""
    return wasmtime.Engine(engine_config(settings))


def deadline_ticks(timeout_ms: int) -> int:
    """Epoch ticks for a time budget; one extra because the current tick may be nearly over."""
    return max(1, -(-timeout_ms // int(EPOCH_TICK_S * 1000))) + 1


class EpochTicker:
    """Advances the engine's epoch on a background thread so running guests hit their deadline.

    wasmtime releases the GIL while guest code runs, so the ticker keeps time even while
    a plugin spins.
    """

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="epoch-ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1)

    def _run(self) -> None:
        while not self._stop.wait(EPOCH_TICK_S):
            self._engine.increment_epoch()
