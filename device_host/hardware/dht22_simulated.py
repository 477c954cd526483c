"""A DHT22 in software, for development machines, demos and tests.

It behaves like the real sensor where that matters to the sampler: values drift slowly,
reads fail now and then, and it can hang or die on command. Tests flip ``failure_rate``,
``hang`` and ``dead`` while a sampler is reading, so every access goes through one lock.
"""

from __future__ import annotations

import math
import random
import threading
import time

from device_host.hardware.dht22 import (
    ChecksumError,
    DriverError,
    MissingDataError,
    SensorUnavailableError,
)

_WALK_STEP = 0.05
_WALK_LIMIT = 1.5
_DAY_S = 86_400.0


class SimulatedDht22:
    """A sensor whose values follow a slow daily sine plus a bounded random walk."""

    min_interval_s = 0.05

    def __init__(
        self,
        *,
        seed: int | None = None,
        failure_rate: float = 0.0,
        hang: bool = False,
        dead: bool = False,
        base_temperature_c: float = 21.0,
        base_humidity_pct: float = 45.0,
        failure_errors: tuple[type[DriverError], ...] = (ChecksumError, MissingDataError),
    ) -> None:
        self._random = random.Random(seed)
        self._base_temperature_c = base_temperature_c
        self._base_humidity_pct = base_humidity_pct
        self._failure_errors = failure_errors
        self._changed = threading.Condition()
        self._failure_rate = failure_rate
        self._hang = hang
        self._dead = dead
        self._closed = False
        self._temperature_walk = 0.0
        self._humidity_walk = 0.0

    @property
    def failure_rate(self) -> float:
        """Probability that a read fails with one of ``failure_errors``."""
        with self._changed:
            return self._failure_rate

    @failure_rate.setter
    def failure_rate(self, value: float) -> None:
        with self._changed:
            self._failure_rate = value

    @property
    def hang(self) -> bool:
        """While True, ``read`` blocks, like a driver stuck in the kernel."""
        with self._changed:
            return self._hang

    @hang.setter
    def hang(self, value: bool) -> None:
        with self._changed:
            self._hang = value
            self._changed.notify_all()

    @property
    def dead(self) -> bool:
        """While True, every read fails as if the sensor were unplugged."""
        with self._changed:
            return self._dead

    @dead.setter
    def dead(self, value: bool) -> None:
        with self._changed:
            self._dead = value

    def release(self) -> None:
        """End a hang: the blocked read returns and later reads go through."""
        self.hang = False

    def close(self) -> None:
        """Make every later read fail and release a hung one; safe to call twice."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def read(self) -> tuple[float, float]:
        """One sample rounded to 0.1 like the real sensor, or an injected failure."""
        with self._changed:
            self._changed.wait_for(lambda: not self._hang or self._closed)
            if self._closed:
                raise SensorUnavailableError("simulated DHT22 is closed")
            if self._dead:
                raise SensorUnavailableError("simulated DHT22 does not answer (dead)")
            if self._random.random() < self._failure_rate:
                error = self._random.choice(self._failure_errors)
                raise error(f"simulated {error.kind} failure")
            return self._next_values()

    def _next_values(self) -> tuple[float, float]:
        self._temperature_walk = self._step(self._temperature_walk)
        self._humidity_walk = self._step(self._humidity_walk)
        daily = math.sin(2 * math.pi * (time.time() % _DAY_S) / _DAY_S)
        temperature = self._base_temperature_c + 2.0 * daily + self._temperature_walk
        humidity = self._base_humidity_pct - 5.0 * daily + 4 * self._humidity_walk
        return round(temperature, 1), round(min(100.0, max(0.0, humidity)), 1)

    def _step(self, walk: float) -> float:
        return max(-_WALK_LIMIT, min(_WALK_LIMIT, walk + self._random.gauss(0.0, _WALK_STEP)))
