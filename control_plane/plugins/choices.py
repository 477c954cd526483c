"""Enumerations the plugins app stores."""

from django.db import models


class VersionStatus(models.TextChoices):
    """Where an uploaded version stands: only approved versions are signed and delivered."""

    CHECKING = "checking", "being checked"
    """Uploaded; the contract check (a compile) runs as a background job."""
    INVALID = "invalid", "invalid"
    """The check refused it; ``problem`` says why."""
    PENDING = "pending", "pending review"
    APPROVED = "approved", "approved"
    REJECTED = "rejected", "rejected"
