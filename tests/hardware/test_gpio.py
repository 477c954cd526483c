"""GPIO outputs: the simulated backend, and the libgpiod v2 backend against a stand-in module."""

from __future__ import annotations

import enum
import logging
import sys
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from device_host.hardware import GpiodOutputs, GpioError, SimulatedGpio, open_gpio


class Direction(enum.Enum):
    INPUT = 1
    OUTPUT = 2


class Value(enum.Enum):
    INACTIVE = 0
    ACTIVE = 1


@dataclass
class StandInLineSettings:
    direction: Direction
    output_value: Value


@dataclass
class StandInRequest:
    """Plays ``gpiod.LineRequest``: records what was driven."""

    set_value_error: OSError | None = None
    driven: list[tuple[int, Value]] = field(default_factory=list)
    releases: int = 0

    def set_value(self, line: int, value: Value) -> None:
        if self.set_value_error is not None:
            raise self.set_value_error
        self.driven.append((line, value))

    def release(self) -> None:
        self.releases += 1


class StandInGpiod:
    """Plays the ``gpiod`` module: records every ``request_lines`` call."""

    line = SimpleNamespace(Direction=Direction, Value=Value)
    LineSettings = StandInLineSettings

    def __init__(self, request_error: OSError | None = None) -> None:
        self.request = StandInRequest()
        self.request_error = request_error
        self.requested: list[
            tuple[str, str | None, dict[tuple[int, ...], StandInLineSettings]]
        ] = []

    def request_lines(
        self,
        path: str,
        config: dict[tuple[int, ...], StandInLineSettings],
        consumer: str | None = None,
    ) -> StandInRequest:
        self.requested.append((path, consumer, config))
        if self.request_error is not None:
            raise self.request_error
        return self.request


def test_simulated_pins_start_low_and_keep_the_level_set() -> None:
    gpio = SimulatedGpio([17, 27])

    gpio.set(17, True)

    assert gpio.get(17) is True
    assert gpio.get(27) is False
    assert gpio.levels() == {17: True, 27: False}


def test_simulated_changes_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="device_host.hardware.gpio")
    gpio = SimulatedGpio([17])

    gpio.set(17, True)
    gpio.set(17, True)

    assert [r.getMessage() for r in caplog.records] == ["gpio 17 -> high"]


def test_simulated_unconfigured_pin_is_refused_naming_it() -> None:
    gpio = SimulatedGpio([17])

    with pytest.raises(GpioError, match="GPIO 5 is not configured"):
        gpio.set(5, True)
    with pytest.raises(GpioError, match="GPIO 5 is not configured"):
        gpio.get(5)


def test_simulated_outputs_refuse_calls_after_close() -> None:
    gpio = SimulatedGpio([17])

    gpio.close()

    with pytest.raises(GpioError, match=r"GPIO 17 .*closed"):
        gpio.set(17, True)


def test_gpiod_requests_every_pin_once_as_an_output_starting_low() -> None:
    gpiod = StandInGpiod()

    GpiodOutputs("/dev/gpiochip4", pins=[27, 17, 17], gpiod_module=gpiod)

    settings = StandInLineSettings(direction=Direction.OUTPUT, output_value=Value.INACTIVE)
    assert gpiod.requested == [("/dev/gpiochip4", "device-host", {(17, 27): settings})]


def test_gpiod_set_drives_the_line_and_get_answers_the_level() -> None:
    gpiod = StandInGpiod()
    gpio = GpiodOutputs(pins=[17], gpiod_module=gpiod)

    gpio.set(17, True)
    gpio.set(17, False)
    gpio.set(17, True)

    assert gpiod.request.driven == [(17, Value.ACTIVE), (17, Value.INACTIVE), (17, Value.ACTIVE)]
    assert gpio.get(17) is True
    assert gpio.levels() == {17: True}


def test_gpiod_unrequested_pin_is_refused_without_touching_the_line() -> None:
    gpiod = StandInGpiod()
    gpio = GpiodOutputs(pins=[17], gpiod_module=gpiod)

    with pytest.raises(GpioError, match=r"GPIO 22 is not configured .*/dev/gpiochip0"):
        gpio.set(22, True)

    assert gpiod.request.driven == []


def test_gpiod_busy_lines_fail_naming_chip_and_pins() -> None:
    gpiod = StandInGpiod(request_error=OSError(16, "Device or resource busy"))

    with pytest.raises(GpioError, match=r"GPIO 17, 27 on /dev/gpiochip0 .*resource busy"):
        GpiodOutputs(pins=[17, 27], gpiod_module=gpiod)


def test_gpiod_failed_write_names_the_pin_and_keeps_the_old_level() -> None:
    gpiod = StandInGpiod()
    gpio = GpiodOutputs(pins=[17], gpiod_module=gpiod)
    gpiod.request.set_value_error = OSError(5, "Input/output error")

    with pytest.raises(GpioError, match="cannot drive GPIO 17 on /dev/gpiochip0"):
        gpio.set(17, True)

    assert gpio.get(17) is False


def test_gpiod_close_releases_the_lines_once() -> None:
    gpiod = StandInGpiod()
    gpio = GpiodOutputs(pins=[17], gpiod_module=gpiod)

    gpio.close()
    gpio.close()

    assert gpiod.request.releases == 1


def test_gpiod_with_no_pins_requests_nothing() -> None:
    gpiod = StandInGpiod()

    gpio = GpiodOutputs(pins=[], gpiod_module=gpiod)

    assert gpiod.requested == []
    assert gpio.levels() == {}


def test_missing_gpiod_bindings_fail_naming_the_chip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gpiod", None)

    with pytest.raises(GpioError, match="GPIO 17 on /dev/gpiochip0"):
        GpiodOutputs(pins=[17])


def test_open_gpio_builds_the_configured_backend() -> None:
    assert isinstance(open_gpio("simulated", [17], "/dev/gpiochip0"), SimulatedGpio)
    with pytest.raises(ValueError, match="unknown GPIO kind 'pwm'"):
        open_gpio("pwm", [17], "/dev/gpiochip0")
