"""The DHT22 sampler, driven by the simulated sensor on real threads with short intervals."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from device_host.hardware import (
    AdafruitDht22,
    ChecksumError,
    Dht22Driver,
    Dht22Sampler,
    Reading,
    SensorErrorKind,
    SimulatedDht22,
    open_dht22,
)

StartSampler = Callable[..., Dht22Sampler]


class FakeClock:
    """A wall clock the test moves by hand, so staleness does not need real waiting."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def wait_until(condition: Callable[[], bool], timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.005)


def read_workers(pin: int) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"dht22-gpio{pin}-read"]


@pytest.fixture
def start_sampler() -> Iterator[StartSampler]:
    started: list[Dht22Sampler] = []

    def start(driver: Dht22Driver, **options: Any) -> Dht22Sampler:
        defaults: dict[str, Any] = {"pin": 4, "interval_s": 0.05, "read_timeout_s": 1.0}
        sampler = Dht22Sampler(driver, **(defaults | options))
        sampler.start()
        started.append(sampler)
        return sampler

    yield start
    for sampler in started:
        sampler.stop()


def test_first_reading_arrives_with_plausible_values(start_sampler: StartSampler) -> None:
    sampler = start_sampler(SimulatedDht22(seed=1))

    wait_until(lambda: sampler.lookup().reading is not None)

    answer = sampler.lookup()
    assert answer.error is None
    assert answer.reading is not None
    assert 15.0 < answer.reading.temperature_c < 27.0
    assert 30.0 < answer.reading.humidity_pct < 60.0
    assert answer.age_ms < 1_000


def test_lookup_is_not_ready_while_the_first_read_is_in_flight(
    start_sampler: StartSampler,
) -> None:
    sampler = start_sampler(SimulatedDht22(hang=True), read_timeout_s=1.0)

    answer = sampler.lookup()

    assert answer.reading is None
    assert answer.error is SensorErrorKind.NOT_READY


def test_failed_reads_are_retried_within_one_round_and_counted(
    start_sampler: StartSampler,
) -> None:
    driver = SimulatedDht22(failure_rate=1.0, failure_errors=(ChecksumError,))
    sampler = start_sampler(driver, interval_s=30.0, retries=2)

    wait_until(lambda: sampler.snapshot().reads_failed == 3)
    time.sleep(0.3)

    snapshot = sampler.snapshot()
    assert snapshot.reads_failed == 3, "one try and two retries, then wait for the next round"
    assert snapshot.consecutive_failures == 3
    assert snapshot.reads_ok == 0
    assert snapshot.last_error is SensorErrorKind.CHECKSUM
    assert snapshot.last_error_message == "simulated checksum failure"
    assert sampler.lookup().error is SensorErrorKind.CHECKSUM


def test_a_good_read_clears_the_error_but_keeps_the_counts(start_sampler: StartSampler) -> None:
    driver = SimulatedDht22(failure_rate=1.0, failure_errors=(ChecksumError,))
    sampler = start_sampler(driver, retries=0)
    wait_until(lambda: sampler.snapshot().reads_failed >= 2)

    driver.failure_rate = 0.0
    wait_until(lambda: sampler.snapshot().reading is not None)

    snapshot = sampler.snapshot()
    assert snapshot.last_error is None
    assert snapshot.last_error_message is None
    assert snapshot.consecutive_failures == 0
    assert snapshot.reads_failed >= 2
    assert snapshot.reads_ok >= 1


def test_a_fresh_reading_is_served_even_after_a_failed_read(start_sampler: StartSampler) -> None:
    driver = SimulatedDht22(failure_errors=(ChecksumError,))
    sampler = start_sampler(driver, clock=FakeClock())
    wait_until(lambda: sampler.snapshot().reading is not None)

    driver.failure_rate = 1.0
    wait_until(lambda: sampler.snapshot().last_error is not None)

    answer = sampler.lookup()
    assert answer.error is None
    assert answer.reading == sampler.snapshot().reading


def test_a_stale_reading_is_replaced_by_the_last_error(start_sampler: StartSampler) -> None:
    clock = FakeClock()
    driver = SimulatedDht22(failure_errors=(ChecksumError,))
    sampler = start_sampler(driver, clock=clock, stale_after_s=10.0)
    wait_until(lambda: sampler.snapshot().reading is not None)
    driver.failure_rate = 1.0
    wait_until(lambda: sampler.snapshot().last_error is not None)

    clock.now += 11.0

    answer = sampler.lookup()
    assert answer.reading is None
    assert answer.error is SensorErrorKind.CHECKSUM
    assert answer.age_ms == 11_000


def test_a_stale_reading_without_a_recorded_error_is_a_timeout(
    start_sampler: StartSampler,
) -> None:
    clock = FakeClock()
    sampler = start_sampler(SimulatedDht22(), clock=clock, stale_after_s=10.0)
    wait_until(lambda: sampler.snapshot().reading is not None)
    sampler.stop()

    clock.now += 10.5

    assert sampler.lookup().error is SensorErrorKind.TIMEOUT


def test_a_hung_read_is_reported_as_a_timeout_once_read_timeout_passes(
    start_sampler: StartSampler,
) -> None:
    started = time.monotonic()
    sampler = start_sampler(SimulatedDht22(hang=True), read_timeout_s=0.2)

    wait_until(lambda: sampler.lookup().error is SensorErrorKind.TIMEOUT)

    assert 0.2 <= time.monotonic() - started < 1.0
    assert sampler.snapshot().last_error_message == "sensor read hung for 0.2 s"


def test_lookups_stay_fast_while_the_driver_hangs(start_sampler: StartSampler) -> None:
    sampler = start_sampler(SimulatedDht22(hang=True), read_timeout_s=0.1)
    wait_until(lambda: sampler.lookup().error is SensorErrorKind.TIMEOUT)

    started = time.perf_counter()
    for _ in range(1_000):
        sampler.lookup()
        sampler.snapshot()
    elapsed = time.perf_counter() - started

    assert elapsed < 0.05, "callers must never wait on the hung driver"


def test_no_new_read_starts_while_a_hung_one_is_outstanding(start_sampler: StartSampler) -> None:
    sampler = start_sampler(SimulatedDht22(hang=True), pin=17, read_timeout_s=0.05, retries=2)
    wait_until(lambda: sampler.lookup().error is SensorErrorKind.TIMEOUT)

    time.sleep(0.3)

    assert len(read_workers(17)) == 1
    assert sampler.snapshot().reads_failed == 1


def test_sampling_recovers_once_a_hang_is_released(start_sampler: StartSampler) -> None:
    driver = SimulatedDht22(hang=True)
    sampler = start_sampler(driver, read_timeout_s=0.05)
    wait_until(lambda: sampler.lookup().error is SensorErrorKind.TIMEOUT)

    driver.release()
    wait_until(lambda: sampler.lookup().reading is not None)

    snapshot = sampler.snapshot()
    assert snapshot.last_error is None
    assert snapshot.reads_ok >= 1


def test_a_dead_sensor_is_unavailable(start_sampler: StartSampler) -> None:
    sampler = start_sampler(SimulatedDht22(dead=True))

    wait_until(lambda: sampler.snapshot().last_attempt_at is not None)

    assert sampler.lookup().error is SensorErrorKind.UNAVAILABLE
    assert "dead" in (sampler.snapshot().last_error_message or "")


def test_stop_returns_promptly_while_the_driver_hangs(start_sampler: StartSampler) -> None:
    sampler = start_sampler(SimulatedDht22(hang=True), pin=22, read_timeout_s=0.05)
    wait_until(lambda: sampler.lookup().error is SensorErrorKind.TIMEOUT)

    started = time.monotonic()
    sampler.stop()

    assert time.monotonic() - started < 0.5
    assert not [t for t in threading.enumerate() if t.name == "dht22-gpio22-sampler"]


def test_every_good_reading_is_handed_to_on_reading(start_sampler: StartSampler) -> None:
    received: list[Reading] = []
    sampler = start_sampler(SimulatedDht22(), on_reading=received.append)

    wait_until(lambda: len(received) >= 3)

    assert sampler.snapshot().reading in received


def test_a_failing_on_reading_callback_does_not_stop_sampling(
    start_sampler: StartSampler, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_reading: Reading) -> None:
        raise ValueError("history is full")

    sampler = start_sampler(SimulatedDht22(), on_reading=broken)

    wait_until(lambda: sampler.snapshot().reads_ok >= 3)
    assert "on_reading callback for DHT22 on GPIO4 failed" in caplog.text


def test_snapshot_json_carries_what_healthz_shows(start_sampler: StartSampler) -> None:
    clock = FakeClock()
    sampler = start_sampler(SimulatedDht22(), clock=clock)
    wait_until(lambda: sampler.snapshot().reading is not None)
    clock.now += 1.5

    document = json.loads(json.dumps(sampler.snapshot().to_json(clock())))

    assert document["pin"] == 4
    assert document["age_s"] == 1.5
    assert document["reading"]["taken_at"] == 1_000.0
    assert document["last_error"] is None
    assert document["reads_ok"] >= 1


def test_polling_faster_than_the_driver_allows_is_refused() -> None:
    with pytest.raises(ValueError, match=r"minimum of 2\.0 s"):
        Dht22Sampler(AdafruitDht22(4), pin=4, interval_s=1.0)


def test_open_dht22_builds_the_configured_driver() -> None:
    assert isinstance(open_dht22("simulated", 4, seed=3), SimulatedDht22)
    assert isinstance(open_dht22("adafruit", 4), AdafruitDht22)
    with pytest.raises(ValueError, match="unknown DHT22 kind 'dht11'"):
        open_dht22("dht11", 4)


def test_a_hung_read_is_logged_as_a_warning(
    start_sampler: StartSampler, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    sampler = start_sampler(SimulatedDht22(hang=True), read_timeout_s=0.05)

    wait_until(lambda: sampler.lookup().error is SensorErrorKind.TIMEOUT)

    assert "DHT22 on GPIO4: sensor read hung for 0.05 s" in caplog.text


class CrashingDriver:
    """A driver with a bug: it raises something other than a DriverError."""

    min_interval_s = 0.05

    def read(self) -> tuple[float, float]:
        raise ZeroDivisionError("division by zero")

    def close(self) -> None:
        pass


def test_a_driver_bug_is_reported_as_unavailable_not_a_dead_thread(
    start_sampler: StartSampler, caplog: pytest.LogCaptureFixture
) -> None:
    sampler = start_sampler(CrashingDriver(), retries=0)

    wait_until(lambda: sampler.snapshot().reads_failed >= 2)

    assert sampler.lookup().error is SensorErrorKind.UNAVAILABLE
    assert "ZeroDivisionError" in (sampler.snapshot().last_error_message or "")
    assert "raised an unexpected error" in caplog.text
