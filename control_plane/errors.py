"""The control plane's error root, and turning a ValidationError into sentences.

Every error the control plane raises on purpose derives from `ControlPlaneError`, itself a
`fleet_common.errors.FleetError`; invalid input from people stays Django's ValidationError,
which forms and the admin already know how to show.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from fleet_common.errors import FleetError


class ControlPlaneError(FleetError):
    """Root of every error the control plane raises on purpose."""


def error_messages(exc: ValidationError) -> list[str]:
    """Each message of ``exc``, prefixed by its field when it has one."""
    if hasattr(exc, "error_dict"):
        return [
            f"{field}: {message}" if field != "__all__" else message
            for field, field_messages in exc.message_dict.items()
            for message in field_messages
        ]
    return list(exc.messages)
