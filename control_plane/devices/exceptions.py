"""Errors the devices app raises on purpose; each message names what was wrong."""

from __future__ import annotations

from control_plane.errors import ControlPlaneError


class DeviceError(ControlPlaneError):
    """Root of the devices app's errors."""


class EnrollmentRefused(DeviceError):
    """The enrollment token is unknown, used up or expired."""


class UnknownDeviceToken(DeviceError):
    """No enrolled device has this bearer token."""
