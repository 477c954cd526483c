"""Enumerations the devices app stores."""

from django.db import models


class EventKind(models.TextChoices):
    """What a device reported happening to one of its plugins (device_host's EventKind)."""

    INSTALLED = "installed", "installed"
    REFUSED = "refused", "refused"
    TRAPPED = "trapped", "trapped"
    QUARANTINED = "quarantined", "quarantined"
    REMOVED = "removed", "removed"
    REVERTED = "reverted", "reverted"
    MAINTENANCE = "maintenance", "maintenance"
    OTHER = "other", "other"


class Connectivity(models.TextChoices):
    """Whether a device heartbeated recently enough; computed, never stored."""

    ONLINE = "online", "online"
    OFFLINE = "offline", "offline"
    MAINTENANCE = "maintenance", "in maintenance"
    """Not heartbeating, but an operator's tool said it is working on the device."""
