"""The Adafruit adapter against a stand-in for ``adafruit_dht.DHT22``.

The messages below are copied from adafruit-circuitpython-dht 4.0.12 (``DHTBase.measure``);
the adapter recognises failures by them, so they must stay exact.
"""

from __future__ import annotations

import sys

import pytest

from device_host.hardware import (
    AdafruitDht22,
    ChecksumError,
    DriverError,
    MissingDataError,
    SensorErrorKind,
    SensorUnavailableError,
)


class StandInDht22:
    """Plays ``adafruit_dht.DHT22``: each property access raises what the library would."""

    def __init__(
        self,
        *,
        temperature: float | None = 21.3,
        humidity: float | None = 48.1,
        error: Exception | None = None,
    ) -> None:
        self._temperature = temperature
        self._humidity = humidity
        self._error = error
        self.exit_calls = 0

    @property
    def temperature(self) -> float | None:
        if self._error is not None:
            raise self._error
        return self._temperature

    @property
    def humidity(self) -> float | None:
        if self._error is not None:
            raise self._error
        return self._humidity

    def exit(self) -> None:
        self.exit_calls += 1


def test_a_good_read_returns_temperature_and_humidity() -> None:
    driver = AdafruitDht22(4, device=StandInDht22(temperature=-3.4, humidity=81.0))

    assert driver.read() == (-3.4, 81.0)


@pytest.mark.parametrize(
    ("message", "error", "kind"),
    [
        ("Checksum did not validate. Try again.", ChecksumError, SensorErrorKind.CHECKSUM),
        ("Received unplausible data. Try again.", ChecksumError, SensorErrorKind.CHECKSUM),
        ("A full buffer was not returned. Try again.", MissingDataError, SensorErrorKind.TIMEOUT),
        ("DHT sensor not found, check wiring", SensorUnavailableError, SensorErrorKind.UNAVAILABLE),
    ],
)
def test_library_failures_map_to_error_kinds(
    message: str, error: type[DriverError], kind: SensorErrorKind
) -> None:
    driver = AdafruitDht22(4, device=StandInDht22(error=RuntimeError(message)))

    with pytest.raises(error) as raised:
        driver.read()

    assert raised.value.kind is kind
    assert str(raised.value) == f"DHT22 on GPIO4: {message}"


def test_an_unknown_runtime_error_is_unavailable() -> None:
    driver = AdafruitDht22(5, device=StandInDht22(error=RuntimeError("Timed out waiting")))

    with pytest.raises(SensorUnavailableError, match="GPIO5: Timed out waiting"):
        driver.read()


def test_a_missing_value_is_missing_data() -> None:
    driver = AdafruitDht22(4, device=StandInDht22(humidity=None))

    with pytest.raises(MissingDataError, match="GPIO4 returned no data"):
        driver.read()


def test_an_os_error_on_the_line_is_unavailable() -> None:
    busy = OSError(16, "Device or resource busy")
    driver = AdafruitDht22(4, device=StandInDht22(error=busy))

    with pytest.raises(SensorUnavailableError, match=r"GPIO4: .*Device or resource busy"):
        driver.read()


def test_a_missing_library_is_unavailable_naming_the_pin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "adafruit_dht", None)
    driver = AdafruitDht22(4)

    with pytest.raises(SensorUnavailableError, match="DHT22 on GPIO4 cannot be opened"):
        driver.read()


def test_close_exits_the_library_once_and_later_reads_fail() -> None:
    device = StandInDht22()
    driver = AdafruitDht22(4, device=device)

    driver.close()
    driver.close()

    assert device.exit_calls == 1
    with pytest.raises(SensorUnavailableError, match="closed"):
        driver.read()
