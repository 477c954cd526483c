"""The one place that touches wasmtime: engine, compiled cache, linking, instances and calls.

Everything else in the host sees plugin versions through `LoadedVersion`'s typed calls per
world (`respond`, `run_periodic`) and never an instance, a Store or a wasmtime type.
"""

from device_host.runtime._artifacts import MAX_COMPONENT_BYTES, ArtifactCache
from device_host.runtime._engine import EngineSettings, EpochTicker, create_engine
from device_host.runtime._exports import DemoReading, HttpRequest, HttpResponse
from device_host.runtime._guest_log import GuestLog
from device_host.runtime._host_functions import HostServices
from device_host.runtime._memory import resident_bytes
from device_host.runtime._validate import (
    Validated,
    check_component,
    surface_of_file,
    validate_component,
)
from device_host.runtime._version import (
    LoadContext,
    LoadedVersion,
    PeriodicOutcome,
    Reading,
    load_version,
)

__all__ = [
    "MAX_COMPONENT_BYTES",
    "ArtifactCache",
    "DemoReading",
    "EngineSettings",
    "EpochTicker",
    "GuestLog",
    "HostServices",
    "HttpRequest",
    "HttpResponse",
    "LoadContext",
    "LoadedVersion",
    "PeriodicOutcome",
    "Reading",
    "Validated",
    "check_component",
    "create_engine",
    "load_version",
    "resident_bytes",
    "surface_of_file",
    "validate_component",
]
