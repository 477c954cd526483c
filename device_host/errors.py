"""The device host's exception hierarchy: one root, a subclass per kind of failure."""

from __future__ import annotations

from enum import StrEnum

from fleet_common.errors import FleetError, PluginLoadError


class DeviceHostError(FleetError):
    """Root of every error the device host raises on purpose (shared: `fleet_common.errors`)."""


class ConfigError(DeviceHostError):
    """The configuration file or an environment override is invalid."""


class PluginBuildError(DeviceHostError):
    """componentize-py could not turn a plugin's source into a component."""


class HardwareError(DeviceHostError):
    """A sensor or GPIO driver failed; plugins see this as an error value, never as a crash."""


class TrapKind(StrEnum):
    """Why a call into a plugin was stopped."""

    TIMEOUT = "timeout"
    BLOCKING_CALL = "blocking-call"
    EXIT = "exit"
    CRASH = "crash"
    OUT_OF_MEMORY = "out-of-memory"
    BAD_OUTPUT = "bad-output"
    """The plugin returned something the host refuses: too large, or malformed."""
    HOST_ERROR = "host-error"
    """The host failed, not the plugin: never counted towards its quarantine."""

    @property
    def plugins_fault(self) -> bool:
        return self is not TrapKind.HOST_ERROR


class PluginTrap(DeviceHostError):
    """A call into a plugin was stopped; the Store it ran in is dead and gets replaced."""

    def __init__(self, plugin: str, kind: TrapKind, detail: str) -> None:
        super().__init__(f"plugin {plugin} stopped ({kind}): {detail}")
        self.plugin = plugin
        self.kind = kind
        self.detail = detail


class PluginUnavailable(DeviceHostError):
    """No version of the plugin can take calls: none loaded, or quarantined after crashes."""


class PluginBusy(PluginUnavailable):
    """Every instance of the plugin is busy and its queue is full: answer 503 at once."""


class NoSensorReading(DeviceHostError):
    """A page of the original demo renders the current reading, and there is none."""


class VersionRetired(PluginUnavailable):
    """The version a call picked was swapped out before the call got an instance; retry."""


class BlockingCallForbidden(DeviceHostError):
    """Raised inside a host function when a plugin tries to sleep or wait.

    Epoch deadlines cannot interrupt a guest blocked in a host call, so blocking waits are
    refused outright; the call traps at once instead of stalling a worker.
    """


class SelfCheckFailed(PluginLoadError):
    """A version's own load-time check failed: it never serves, and its health says so."""
