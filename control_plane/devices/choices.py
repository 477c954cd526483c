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
    OTHER = "other", "other"


class Connectivity(models.TextChoices):
    """Whether a device heartbeated recently enough; computed, never stored."""

    ONLINE = "online", "online"
    OFFLINE = "offline", "offline"
