"""Digital outputs (relays, fans, LEDs): one protocol, a simulated and a libgpiod v2 backend.

Only the pins named at construction can be driven, mirroring the kernel: a line must be
requested before it can be set. Both backends start every pin low and remember the level
they last drove, which is what ``get`` answers and what /healthz shows.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterable
from typing import Any, Protocol

from device_host.errors import HardwareError

_log = logging.getLogger(__name__)

CONSUMER = "device-host"
"""The owner ``gpioinfo`` shows for our lines, so an operator can tell who holds them."""


class GpioError(HardwareError):
    """A GPIO line could not be requested or driven; the message names the pin."""


class GpioOutputs(Protocol):
    """The output pins a device host may drive."""

    def set(self, pin: int, high: bool) -> None:
        """Drive ``pin`` high or low; raises GpioError."""

    def get(self, pin: int) -> bool:
        """The level last driven on ``pin``; raises GpioError for a pin never configured."""

    def close(self) -> None:
        """Release the lines; later calls raise GpioError. Safe to call twice."""

    def levels(self) -> dict[int, bool]:
        """Every configured pin and its level, for /healthz."""


class _Levels:
    """The levels last driven, per configured pin, behind the lock that also guards I/O."""

    def __init__(self, pins: Iterable[int], where: str) -> None:
        self.lock = threading.Lock()
        self.where = where
        self._levels = dict.fromkeys(sorted(set(pins)), False)
        self._closed = False

    @property
    def pins(self) -> tuple[int, ...]:
        return tuple(self._levels)

    def check(self, pin: int) -> None:
        """Raise unless ``pin`` may be used now; call with ``lock`` held."""
        if self._closed:
            raise GpioError(f"GPIO {pin} on {self.where}: outputs are closed")
        if pin not in self._levels:
            configured = ", ".join(map(str, self._levels)) or "none"
            raise GpioError(
                f"GPIO {pin} is not configured as an output on {self.where} "
                f"(configured: {configured})"
            )

    def get(self, pin: int) -> bool:
        with self.lock:
            self.check(pin)
            return self._levels[pin]

    def record(self, pin: int, high: bool) -> None:
        """Remember a level that was just driven; call with ``lock`` held."""
        if self._levels[pin] != high:
            _log.info("gpio %d -> %s", pin, "high" if high else "low")
        self._levels[pin] = high

    def snapshot(self) -> dict[int, bool]:
        with self.lock:
            return dict(self._levels)

    def close(self) -> bool:
        """Mark closed; True only for the first call."""
        with self.lock:
            first, self._closed = not self._closed, True
            return first


class SimulatedGpio:
    """Outputs kept in memory, for machines without GPIO; every change is logged."""

    def __init__(self, pins: Iterable[int]) -> None:
        self._levels = _Levels(pins, "simulated GPIO")

    def set(self, pin: int, high: bool) -> None:
        """Record the new level (and log it if it changed)."""
        with self._levels.lock:
            self._levels.check(pin)
            self._levels.record(pin, high)

    def get(self, pin: int) -> bool:
        """The level last set; configured pins start low."""
        return self._levels.get(pin)

    def levels(self) -> dict[int, bool]:
        """Every configured pin and its level, for /healthz."""
        return self._levels.snapshot()

    def close(self) -> None:
        """Refuse further calls."""
        self._levels.close()


class GpiodOutputs:
    """Outputs driven through the libgpiod v2 Python bindings (the ``gpiod`` package).

    All pins are requested once, as outputs starting low, and held until ``close``; with no
    pins nothing is requested, since the kernel refuses an empty request. The module is
    imported here rather than at the top so the host runs where it is missing;
    ``gpiod_module`` lets tests pass a stand-in.
    """

    def __init__(
        self,
        chip_path: str = "/dev/gpiochip0",
        *,
        pins: Iterable[int],
        gpiod_module: object | None = None,
    ) -> None:
        self._levels = _Levels(pins, chip_path)
        self._request: Any = None
        self._gpiod: Any = None
        if not self._levels.pins:
            return
        try:
            self._gpiod = _gpiod_bindings(gpiod_module)
            settings = self._gpiod.LineSettings(
                direction=self._gpiod.line.Direction.OUTPUT,
                output_value=self._gpiod.line.Value.INACTIVE,
            )
            self._request = self._gpiod.request_lines(
                chip_path, consumer=CONSUMER, config={self._levels.pins: settings}
            )
        except (ImportError, OSError, ValueError) as exc:
            names = ", ".join(map(str, self._levels.pins))
            raise GpioError(
                f"cannot request GPIO {names} on {chip_path} as outputs: {exc}"
            ) from exc

    def set(self, pin: int, high: bool) -> None:
        """Drive the line; the remembered level changes only if the kernel accepted it."""
        with self._levels.lock:
            self._levels.check(pin)
            value = self._gpiod.line.Value.ACTIVE if high else self._gpiod.line.Value.INACTIVE
            try:
                self._request.set_value(pin, value)
            except (OSError, ValueError) as exc:
                raise GpioError(f"cannot drive GPIO {pin} on {self._levels.where}: {exc}") from exc
            self._levels.record(pin, high)

    def get(self, pin: int) -> bool:
        """The level last driven, answered from memory without a syscall."""
        return self._levels.get(pin)

    def levels(self) -> dict[int, bool]:
        """Every configured pin and its level, for /healthz."""
        return self._levels.snapshot()

    def close(self) -> None:
        """Release the lines so another process may request them."""
        if self._levels.close() and self._request is not None:
            self._request.release()


def _gpiod_bindings(stand_in: object | None) -> Any:
    return stand_in if stand_in is not None else importlib.import_module("gpiod")


def open_gpio(kind: str, pins: Iterable[int], chip_path: str) -> GpioOutputs:
    """The outputs backend named in the configuration: ``simulated`` or ``gpiod``."""
    if kind == "simulated":
        return SimulatedGpio(pins)
    if kind == "gpiod":
        return GpiodOutputs(chip_path, pins=pins)
    raise ValueError(f"unknown GPIO kind {kind!r}; expected 'simulated' or 'gpiod'")
