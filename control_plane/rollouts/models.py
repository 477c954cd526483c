"""Assignments: an approved plugin version, and the devices that should run it."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from control_plane.devices.models import Device, Tag
from control_plane.plugins.choices import VersionStatus
from control_plane.plugins.models import PluginVersion
from control_plane.rollouts.choices import SPECIFICITY, AssignmentTarget


class Assignment(models.Model):
    """Run ``plugin_version`` on every device, on devices with ``tag``, or on ``device``.

    For each plugin, a device runs the version of the most specific assignment that covers
    it (device over tag over all), the newest among equals.
    """

    plugin_version = models.ForeignKey(
        PluginVersion,
        on_delete=models.PROTECT,
        related_name="assignments",
    )
    target = models.CharField(max_length=8, choices=AssignmentTarget.choices)
    tag = models.ForeignKey(
        Tag, on_delete=models.PROTECT, null=True, blank=True, related_name="assignments"
    )
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, null=True, blank=True, related_name="assignments"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(target=AssignmentTarget.ALL, tag__isnull=True, device__isnull=True)
                    | Q(target=AssignmentTarget.TAG, tag__isnull=False, device__isnull=True)
                    | Q(target=AssignmentTarget.DEVICE, tag__isnull=True, device__isnull=False)
                ),
                name="rollouts_assignment_target_matches",
            )
        ]

    def __str__(self) -> str:
        return f"{self.plugin_version} → {self.target_label}"

    @property
    def target_label(self) -> str:
        if self.target == AssignmentTarget.TAG:
            return f"tag {self.tag}"
        if self.target == AssignmentTarget.DEVICE:
            return f"device {self.device}"
        return "all devices"

    @property
    def specificity(self) -> int:
        return SPECIFICITY[AssignmentTarget(self.target)]

    def clean(self) -> None:
        errors: dict[str, str] = {}
        version = self.plugin_version if self.plugin_version_id else None
        if version is not None and version.status != VersionStatus.APPROVED:
            errors["plugin_version"] = f"{version} is not approved; only signed versions ship"
        if self.target == AssignmentTarget.TAG and self.tag_id is None:
            errors["tag"] = "choose the tag whose devices get this version"
        if self.target == AssignmentTarget.DEVICE and self.device_id is None:
            errors["device"] = "choose the device that gets this version"
        if self.target != AssignmentTarget.TAG and self.tag_id is not None:
            errors["tag"] = "a tag is only for assignments that target a tag"
        if self.target != AssignmentTarget.DEVICE and self.device_id is not None:
            errors["device"] = "a device is only for assignments that target one device"
        if errors:
            raise ValidationError(errors)
