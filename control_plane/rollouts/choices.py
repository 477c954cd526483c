"""Enumerations the rollouts app stores."""

from django.db import models


class AssignmentTarget(models.TextChoices):
    """Which devices an assignment covers; a more specific target wins (device > tag > all)."""

    ALL = "all", "all devices"
    TAG = "tag", "devices with a tag"
    DEVICE = "device", "one device"


SPECIFICITY = {AssignmentTarget.ALL: 1, AssignmentTarget.TAG: 2, AssignmentTarget.DEVICE: 3}
