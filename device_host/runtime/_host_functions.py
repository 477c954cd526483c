"""The host side of the contract: one function per WIT interface registers its host functions.

Each function closes over one plugin's grants, so a call with a pin the manifest does not
name gets ``not-granted`` even though the interface itself is linked. wasmtime-py takes a
``result`` from a host function as a bare value when the ok and err types differ, which
holds for every result in this contract.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from wasmtime.component import LinkerInstance, Record

from device_host.hardware import (
    GpioError,
    GpioOutputs,
    SensorErrorKind,
    SensorLookup,
    SensorSnapshot,
)
from device_host.runtime._guest_log import GuestLog
from device_host.storage.kv import PluginKv


class SensorSource(Protocol):
    """Anything that answers a plugin's sensor read from a cache (the DHT22 sampler)."""

    def lookup(self) -> SensorLookup: ...

    def snapshot(self) -> SensorSnapshot: ...


@dataclass(frozen=True)
class HostServices:
    """What host functions reach: the device's hardware and storage."""

    sensors: Mapping[int, SensorSource]
    gpio: GpioOutputs
    wall_clock: Callable[[], float] = time.time


def _record(**fields: Any) -> Record:
    record = Record()
    for name, value in fields.items():
        setattr(record, name.replace("_", "-"), value)
    return record


def add_log(instance: LinkerInstance, guest_log: GuestLog) -> None:
    """``fleet:plugin/log``: every plugin may log, within its line budget."""
    instance.add_func("write", lambda _store, level, message: guest_log.write(level, message))


def add_dht22(instance: LinkerInstance, pins: frozenset[int], services: HostServices) -> None:
    """``fleet:plugin/dht22``: the sampler's cached reading for a granted pin; never blocks."""

    def answer(pin: int, *, fresh: bool) -> Record | str:
        if pin not in pins:
            return "not-granted"
        sensor = services.sensors.get(pin)
        if sensor is None:
            return "unavailable"
        if fresh:
            found = sensor.lookup()
            reading, error = found.reading, found.error
        else:
            reading, error = sensor.snapshot().reading, SensorErrorKind.NOT_READY
        if reading is None:
            return str(error or "unavailable")
        return _record(
            temperature_c=reading.temperature_c,
            humidity_pct=reading.humidity_pct,
            taken_at_ms=int(reading.taken_at * 1000),
            age_ms=max(0, int((services.wall_clock() - reading.taken_at) * 1000)),
        )

    instance.add_func("read", lambda _store, pin: answer(pin, fresh=True))
    instance.add_func("last-good", lambda _store, pin: answer(pin, fresh=False))


def add_gpio(instance: LinkerInstance, pins: frozenset[int], services: HostServices) -> None:
    """``fleet:plugin/gpio``: drive and read back granted output pins."""

    def set_output(_store: Any, pin: int, high: bool) -> str | None:
        if pin not in pins:
            return "not-granted"
        try:
            services.gpio.set(pin, high)
        except GpioError:
            return "unavailable"
        return None

    def get_output(_store: Any, pin: int) -> bool | str:
        if pin not in pins:
            return "not-granted"
        try:
            return services.gpio.get(pin)
        except GpioError:
            return "unavailable"

    instance.add_func("set-output", set_output)
    instance.add_func("get-output", get_output)


def add_kv(instance: LinkerInstance, store: PluginKv) -> None:
    """``fleet:plugin/kv``: the plugin's own store, bounded by its quota."""
    instance.add_func("get", lambda _store, key: store.get(key))
    instance.add_func("set", lambda _store, key, value: _error_or_none(store.set(key, value)))
    instance.add_func("delete", lambda _store, key: _error_or_none(store.delete(key)))
    instance.add_func("keys", lambda _store: store.keys())


def _error_or_none(error: str | None) -> str | None:
    return None if error is None else str(error)


def add_demo_gpio_provider(
    instance: LinkerInstance, pins: frozenset[int], services: HostServices
) -> None:
    """``demo:plugin/gpio-provider``: the original demo's sensor call, served from the cache."""

    def read_dht22(_store: Any, pin: int) -> tuple[float, float] | str:
        if pin not in pins:
            return f"pin {pin} is not granted to this plugin"
        sensor = services.sensors.get(pin)
        if sensor is None:
            return f"no DHT22 on pin {pin}"
        answer = sensor.lookup()
        if answer.reading is None:
            return f"sensor error: {answer.error or 'unavailable'}"
        return (answer.reading.temperature_c, answer.reading.humidity_pct)

    instance.add_func("read-dht22", read_dht22)
    instance.add_func("get-timestamp-ms", lambda _store: int(services.wall_clock() * 1000))
