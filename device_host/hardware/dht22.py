"""The DHT22 sampler: the one owner of a sensor's I/O, caching what plugins and /healthz read.

A DHT22 answers at most every two seconds, fails often, and a stuck driver can block for
good. So the sampler polls on its own thread, runs every read in a worker thread it waits
on for a bounded time, and publishes a frozen ``SensorSnapshot``. Callers only ever read
that snapshot, so they never wait on hardware.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Protocol

from device_host.errors import HardwareError

_log = logging.getLogger(__name__)

DEFAULT_MIN_INTERVAL_S = 2.0
"""The datasheet's limit, assumed for any driver that does not declare ``min_interval_s``."""

_STOP_JOIN_TIMEOUT_S = 2.0


class SensorErrorKind(enum.StrEnum):
    """Why no usable reading exists; the values are the WIT ``sensor-error`` case names."""

    NOT_READY = "not-ready"
    TIMEOUT = "timeout"
    CHECKSUM = "checksum"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Reading:
    """One good sample; ``taken_at`` is wall-clock Unix seconds."""

    temperature_c: float
    humidity_pct: float
    taken_at: float


@dataclass(frozen=True)
class SensorSnapshot:
    """Everything known about one sensor, swapped whole so readers never see a half update."""

    pin: int
    reading: Reading | None = None
    last_error: SensorErrorKind | None = None
    last_error_message: str | None = None
    last_attempt_at: float | None = None
    consecutive_failures: int = 0
    reads_ok: int = 0
    reads_failed: int = 0

    def age_s(self, now: float) -> float | None:
        """Seconds since the last good reading (never negative), or None before the first."""
        if self.reading is None:
            return None
        return max(0.0, now - self.reading.taken_at)

    def to_json(self, now: float) -> dict[str, object]:
        """The shape /healthz and the readings API publish."""
        return {
            "pin": self.pin,
            "reading": None if self.reading is None else asdict(self.reading),
            "age_s": self.age_s(now),
            "last_error": self.last_error,
            "last_error_message": self.last_error_message,
            "last_attempt_at": self.last_attempt_at,
            "consecutive_failures": self.consecutive_failures,
            "reads_ok": self.reads_ok,
            "reads_failed": self.reads_failed,
        }


@dataclass(frozen=True)
class SensorLookup:
    """A plugin's answer: a fresh reading and its age, or the error; exactly one is set."""

    reading: Reading | None
    age_ms: int
    error: SensorErrorKind | None


class DriverError(HardwareError):
    """A single read failed; ``kind`` is what plugins are told once the cache goes stale."""

    kind: SensorErrorKind = SensorErrorKind.UNAVAILABLE


class ChecksumError(DriverError):
    """The sensor answered with a corrupt frame; the next read usually succeeds."""

    kind = SensorErrorKind.CHECKSUM


class MissingDataError(DriverError):
    """The sensor's answer was cut short or empty, so it is reported as a timeout."""

    kind = SensorErrorKind.TIMEOUT


class SensorUnavailableError(DriverError):
    """No sensor answers on the pin, or its driver cannot be used at all."""

    kind = SensorErrorKind.UNAVAILABLE


class Dht22Driver(Protocol):
    """One sensor's raw I/O. ``read`` may block or hang; the sampler guards against both.

    A driver may declare a class attribute ``min_interval_s`` (the shortest safe gap between
    two reads); drivers that do not are held to the datasheet's 2 s.
    """

    def read(self) -> tuple[float, float]:
        """Take one sample: (temperature in °C, relative humidity in %); raises DriverError."""

    def close(self) -> None:
        """Release the line; safe to call twice."""


@dataclass
class _Attempt:
    """One read on a worker thread; ``outcome`` is set, under the condition, when it ends."""

    outcome: tuple[float, float] | DriverError | None = None


class Dht22Sampler:
    """Polls one DHT22 on a daemon thread and caches the result as a ``SensorSnapshot``.

    A failed read is retried up to ``retries`` times within a round, each retry after the
    driver's ``min_interval_s``: sooner is useless because the Adafruit library answers any
    read within 2 s of the previous attempt, failed or not, from its cache (an old value
    passed off as new, or None), and the datasheet forbids it anyway. The next round starts
    ``interval_s`` after this one started, and never sooner than ``min_interval_s`` after
    its last read ended. A read that outlives ``read_timeout_s`` is recorded as a timeout;
    no other read starts until it returns, and its late answer is discarded.
    """

    def __init__(
        self,
        driver: Dht22Driver,
        *,
        pin: int,
        interval_s: float = 2.0,
        stale_after_s: float = 10.0,
        read_timeout_s: float = 1.0,
        retries: int = 2,
        clock: Callable[[], float] = time.time,
        on_reading: Callable[[Reading], None] | None = None,
    ) -> None:
        min_interval_s = float(getattr(driver, "min_interval_s", DEFAULT_MIN_INTERVAL_S))
        if interval_s < min_interval_s:
            raise ValueError(
                f"DHT22 on GPIO{pin}: interval_s={interval_s} is below the driver's "
                f"minimum of {min_interval_s} s between reads"
            )
        if stale_after_s <= 0 or read_timeout_s <= 0 or retries < 0:
            raise ValueError(
                f"DHT22 on GPIO{pin}: stale_after_s and read_timeout_s must be positive "
                "and retries must not be negative"
            )
        self._driver = driver
        self._pin = pin
        self._interval_s = interval_s
        self._min_interval_s = min_interval_s
        self._stale_after_s = stale_after_s
        self._read_timeout_s = read_timeout_s
        self._retries = retries
        self._clock = clock
        self._on_reading = on_reading
        self._snapshot_lock = threading.Lock()
        self._snapshot = SensorSnapshot(pin=pin)
        self._wakeup = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sampling. A sampler runs once: after ``stop`` it cannot be restarted."""
        if self._thread is not None:
            raise RuntimeError(f"DHT22 sampler on GPIO{self._pin} was already started")
        self._thread = threading.Thread(
            target=self._run, name=f"dht22-gpio{self._pin}-sampler", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling, wait (bounded) for the thread to end, and close the driver.

        A read still hung in the driver is abandoned on its daemon thread.
        """
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=_STOP_JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                _log.warning("DHT22 sampler on GPIO%d did not stop in time", self._pin)
        self._driver.close()

    def snapshot(self) -> SensorSnapshot:
        """The latest cached state; never touches hardware."""
        with self._snapshot_lock:
            return self._snapshot

    def lookup(self) -> SensorLookup:
        """A plugin's read: the reading while it is fresh, otherwise why there is none."""
        snapshot = self.snapshot()
        age_s = snapshot.age_s(self._clock())
        age_ms = 0 if age_s is None else int(age_s * 1000)
        if snapshot.reading is not None and age_s is not None and age_s <= self._stale_after_s:
            return SensorLookup(reading=snapshot.reading, age_ms=age_ms, error=None)
        if snapshot.last_error is not None:
            error = snapshot.last_error
        elif snapshot.last_attempt_at is None:
            error = SensorErrorKind.NOT_READY
        else:
            error = SensorErrorKind.TIMEOUT
        return SensorLookup(reading=None, age_ms=age_ms, error=error)

    def _run(self) -> None:
        while not self._stopping:
            round_started = time.monotonic()
            self._sample_round()
            next_round = max(
                round_started + self._interval_s, time.monotonic() + self._min_interval_s
            )
            self._sleep(next_round - time.monotonic())

    def _sample_round(self) -> None:
        for attempt in range(self._retries + 1):
            if attempt and not self._sleep(self._min_interval_s):
                return
            if self._read_once():
                return

    def _read_once(self) -> bool:
        """One bounded read; True when the round is over (a reading arrived, or stopping)."""
        attempt = _Attempt()
        worker = threading.Thread(
            target=self._read_in_worker,
            args=(attempt,),
            name=f"dht22-gpio{self._pin}-read",
            daemon=True,
        )
        worker.start()
        with self._wakeup:
            self._wakeup.wait_for(
                lambda: attempt.outcome is not None or self._stopping,
                timeout=self._read_timeout_s,
            )
        if self._stopping:
            return True
        if attempt.outcome is None:
            message = f"sensor read hung for {self._read_timeout_s} s"
            _log.warning("DHT22 on GPIO%d: %s", self._pin, message)
            self._record_failure(SensorErrorKind.TIMEOUT, message)
            with self._wakeup:
                self._wakeup.wait_for(lambda: attempt.outcome is not None or self._stopping)
            return self._stopping
        if isinstance(attempt.outcome, DriverError):
            self._record_failure(attempt.outcome.kind, str(attempt.outcome))
            return False
        self._record_reading(*attempt.outcome)
        return True

    def _read_in_worker(self, attempt: _Attempt) -> None:
        outcome: tuple[float, float] | DriverError
        try:
            outcome = self._driver.read()
        except DriverError as exc:
            outcome = exc
        except Exception as exc:
            _log.exception("DHT22 driver on GPIO%d raised an unexpected error", self._pin)
            outcome = SensorUnavailableError(f"driver failed unexpectedly: {exc!r}")
        with self._wakeup:
            attempt.outcome = outcome
            self._wakeup.notify_all()

    def _sleep(self, seconds: float) -> bool:
        """Wait unless stopping; False when the sampler is stopping."""
        with self._wakeup:
            self._wakeup.wait_for(lambda: self._stopping, timeout=max(0.0, seconds))
            return not self._stopping

    def _record_reading(self, temperature_c: float, humidity_pct: float) -> None:
        now = self._clock()
        reading = Reading(temperature_c=temperature_c, humidity_pct=humidity_pct, taken_at=now)
        with self._snapshot_lock:
            self._snapshot = replace(
                self._snapshot,
                reading=reading,
                last_error=None,
                last_error_message=None,
                last_attempt_at=now,
                consecutive_failures=0,
                reads_ok=self._snapshot.reads_ok + 1,
            )
        if self._on_reading is not None:
            try:
                self._on_reading(reading)
            except Exception:
                _log.exception("on_reading callback for DHT22 on GPIO%d failed", self._pin)

    def _record_failure(self, kind: SensorErrorKind, message: str) -> None:
        with self._snapshot_lock:
            self._snapshot = replace(
                self._snapshot,
                last_error=kind,
                last_error_message=message,
                last_attempt_at=self._clock(),
                consecutive_failures=self._snapshot.consecutive_failures + 1,
                reads_failed=self._snapshot.reads_failed + 1,
            )
