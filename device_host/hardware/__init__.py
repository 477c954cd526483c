"""The device's hardware: DHT22 sensors behind a caching sampler, and GPIO outputs.

Plugins never reach a driver directly; host functions read a sampler's cache or call
``GpioOutputs``, and every driver failure arrives as a ``HardwareError`` subclass.
"""

from __future__ import annotations

from typing import Any

from device_host.hardware.dht22 import (
    ChecksumError,
    Dht22Driver,
    Dht22Sampler,
    DriverError,
    MissingDataError,
    Reading,
    SensorErrorKind,
    SensorLookup,
    SensorSnapshot,
    SensorUnavailableError,
)
from device_host.hardware.dht22_adafruit import AdafruitDht22
from device_host.hardware.dht22_simulated import SimulatedDht22
from device_host.hardware.gpio import (
    GpiodOutputs,
    GpioError,
    GpioOutputs,
    SimulatedGpio,
    open_gpio,
)

__all__ = [
    "AdafruitDht22",
    "ChecksumError",
    "Dht22Driver",
    "Dht22Sampler",
    "DriverError",
    "GpioError",
    "GpioOutputs",
    "GpiodOutputs",
    "MissingDataError",
    "Reading",
    "SensorErrorKind",
    "SensorLookup",
    "SensorSnapshot",
    "SensorUnavailableError",
    "SimulatedDht22",
    "SimulatedGpio",
    "open_dht22",
    "open_gpio",
]


def open_dht22(kind: str, pin: int, **simulated_options: Any) -> Dht22Driver:
    """The driver named in the configuration: ``simulated`` (taking its options) or ``adafruit``."""
    if kind == "simulated":
        return SimulatedDht22(**simulated_options)
    if kind == "adafruit":
        if simulated_options:
            raise ValueError(
                f"DHT22 on GPIO{pin}: options {sorted(simulated_options)} are simulated-only"
            )
        return AdafruitDht22(pin)
    raise ValueError(f"unknown DHT22 kind {kind!r}; expected 'simulated' or 'adafruit'")
