"""Enumerations the builds app stores."""

from django.db import models


class ArtifactState(models.TextChoices):
    """Where one version's compile for one device class stands."""

    QUEUED = "queued", "queued"
    COMPILING = "compiling", "compiling"
    READY = "ready", "ready"
    FAILED = "failed", "failed"
