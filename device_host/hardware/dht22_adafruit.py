"""The real DHT22 on a Raspberry Pi, through adafruit-circuitpython-dht.

The library signals every failure as a ``RuntimeError`` whose message is the only clue to
what went wrong; this adapter turns those messages into our error kinds. It bit-bangs
the line (``use_pulseio=False``), which works on every Pi without the libgpiod pulse
helper. The library answers any read within 2 s of its previous attempt from its cache,
which is why ``min_interval_s`` is 2 s and the sampler spaces reads from their end.
"""

from __future__ import annotations

from typing import Protocol

from device_host.hardware.dht22 import (
    ChecksumError,
    DriverError,
    MissingDataError,
    SensorUnavailableError,
)

_ERRORS_BY_MESSAGE: dict[str, type[DriverError]] = {
    "Checksum did not validate. Try again.": ChecksumError,
    # Humidity outside 0-100 % means the frame was corrupt even though its checksum matched.
    "Received unplausible data. Try again.": ChecksumError,
    # Some pulses arrived but not all 80: the sensor stopped answering mid-frame.
    "A full buffer was not returned. Try again.": MissingDataError,
    # Fewer than 10 pulses: nothing is answering on the line.
    "DHT sensor not found, check wiring": SensorUnavailableError,
}
"""Any other RuntimeError is not a known transient, so it is reported as unavailable."""


class DhtDevice(Protocol):
    """What this adapter uses of ``adafruit_dht.DHT22``; each property may trigger a read."""

    @property
    def temperature(self) -> float | None: ...

    @property
    def humidity(self) -> float | None: ...


class AdafruitDht22:
    """A DHT22 on one GPIO pin (BCM numbering).

    The library is imported on the first read, not at construction, so a Pi without it (or
    a board Blinka does not know) keeps the host running and reports the sensor as
    unavailable until it can be opened.
    """

    min_interval_s = 2.0

    def __init__(self, pin: int, *, device: DhtDevice | None = None) -> None:
        self._pin = pin
        self._device = device
        self._closed = False

    def read(self) -> tuple[float, float]:
        """One sample as (°C, %); raises a DriverError naming the pin."""
        if self._closed:
            raise SensorUnavailableError(f"DHT22 on GPIO{self._pin} is closed")
        device = self._open()
        try:
            temperature = device.temperature
            humidity = device.humidity
        except RuntimeError as exc:
            message = str(exc)
            error = _ERRORS_BY_MESSAGE.get(message, SensorUnavailableError)
            raise error(f"DHT22 on GPIO{self._pin}: {message}") from exc
        except OSError as exc:
            raise SensorUnavailableError(f"DHT22 on GPIO{self._pin}: {exc}") from exc
        if temperature is None or humidity is None:
            raise MissingDataError(f"DHT22 on GPIO{self._pin} returned no data")
        return float(temperature), float(humidity)

    def close(self) -> None:
        """Let the library release its resources; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        exit_device = getattr(self._device, "exit", None)
        if callable(exit_device):
            exit_device()

    def _open(self) -> DhtDevice:
        if self._device is not None:
            return self._device
        try:
            import adafruit_dht
            import board

            board_pin = getattr(board, f"D{self._pin}")
            device: DhtDevice = adafruit_dht.DHT22(board_pin, use_pulseio=False)
        except (ImportError, NotImplementedError, AttributeError, RuntimeError, OSError) as exc:
            raise SensorUnavailableError(
                f"DHT22 on GPIO{self._pin} cannot be opened: {type(exc).__name__}: {exc}"
            ) from exc
        self._device = device
        return device
