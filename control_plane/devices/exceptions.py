"""Errors the devices app raises on purpose; each message names what was wrong."""

from __future__ import annotations


class DeviceError(Exception):
    """Root of the devices app's errors."""


class EnrollmentRefused(DeviceError):
    """The enrollment token is unknown, used up or expired."""


class UnknownDeviceToken(DeviceError):
    """No enrolled device has this bearer token."""
