"""The one place that touches wasmtime: engine, compiled cache, linking, instances and calls.

Everything else in the host sees plugin versions through `LoadedVersion`'s typed calls per
world (`respond`, `run_periodic`) and never an instance, a Store or a wasmtime type.
"""

from device_host.runtime._artifacts import ArtifactCache, Delivered, LoadHow
from device_host.runtime._engine import EpochTicker, create_engine
from device_host.runtime._exports import DemoReading, HttpRequest, HttpResponse
from device_host.runtime._guest_log import GuestLog
from device_host.runtime._host_functions import HostServices
from device_host.runtime._memory import resident_bytes
from device_host.runtime._validate import check_component
from device_host.runtime._version import (
    LoadContext,
    LoadedVersion,
    PeriodicOutcome,
    Reading,
    load_version,
)

__all__ = [
    "ArtifactCache",
    "Delivered",
    "DemoReading",
    "EpochTicker",
    "GuestLog",
    "HostServices",
    "HttpRequest",
    "HttpResponse",
    "LoadContext",
    "LoadHow",
    "LoadedVersion",
    "PeriodicOutcome",
    "Reading",
    "check_component",
    "create_engine",
    "load_version",
    "resident_bytes",
]
