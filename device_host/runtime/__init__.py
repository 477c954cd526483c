"""The one place that touches wasmtime: engine, compiled cache, linking, instances and calls."""

from device_host.runtime.artifacts import ArtifactCache
from device_host.runtime.engine import EngineSettings, EpochTicker, create_engine
from device_host.runtime.exports import DemoReading, HttpRequest, HttpResponse
from device_host.runtime.guest_log import GuestLog
from device_host.runtime.host_functions import HostServices
from device_host.runtime.version import LoadContext, LoadedVersion, load_version

__all__ = [
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
    "create_engine",
    "load_version",
]
