"""Errors the devices app raises on purpose; each message names what was wrong."""

from __future__ import annotations

from control_plane.errors import ControlPlaneError


class DeviceError(ControlPlaneError):
    """Root of the devices app's errors."""


class EnrollmentRefused(DeviceError):
    """The enrollment token is unknown, used up or expired."""


class UnknownDeviceToken(DeviceError):
    """No enrolled device has this bearer token."""


class TelemetryRefused(DeviceError):
    """A heartbeat over the device's telemetry limits; nothing of it was stored.

    ``retry_after_s`` is how long the device should wait before it sends again.
    """

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
