"""Enumerations the devices app stores."""

from django.db import models

from fleet_common.wire.events import EventKind as DeviceEventKind

# The stubs do not know the functional API; the kinds must come from the wire, not a copy.
EventKind = models.TextChoices(  # type: ignore[call-overload]
    "EventKind",
    [(kind.name, (kind.value, kind.value)) for kind in DeviceEventKind]
    + [("MAINTENANCE", ("maintenance", "maintenance")), ("OTHER", ("other", "other"))],
)
"""What a device reported happening to one of its plugins (the wire's kinds), what an
operator's tool recorded (maintenance), and ``other`` for kinds this version does not know."""


class Connectivity(models.TextChoices):
    """Whether a device heartbeated recently enough; computed, never stored."""

    ONLINE = "online", "online"
    OFFLINE = "offline", "offline"
    MAINTENANCE = "maintenance", "in maintenance"
    """Not heartbeating, but an operator's tool said it is working on the device."""
