"""Enumerations the plugins app stores."""

from django.db import models


class VersionStatus(models.TextChoices):
    """Where an uploaded version stands: only approved versions are signed and delivered."""

    PENDING = "pending", "pending review"
    APPROVED = "approved", "approved"
    REJECTED = "rejected", "rejected"
