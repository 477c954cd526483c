"""What runs where: each device's releases, standing assignments, and staged rollouts."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from control_plane.devices.models import Device, Tag
from control_plane.plugins.choices import VersionStatus
from control_plane.plugins.models import Plugin, PluginVersion, Release
from control_plane.rollouts.choices import (
    SPECIFICITY,
    AssignmentTarget,
    DecisionKind,
    MemberState,
    OnTimeout,
    RolloutStatus,
    RolloutTarget,
    WaveStatus,
)

DEFAULT_WAVES = [5, 25, 100]
"""Cumulative percentages: a canary (at least one device), a quarter, everyone."""


def default_waves() -> list[int]:
    return list(DEFAULT_WAVES)


class DeviceRelease(models.Model):
    """The release of a plugin one device should run: its signed desired state lists these.

    Only a rollout's wave, a rollback, a standing assignment applied to a new device, or an
    explicit uninstall changes a row; nothing else ever uninstalls a plugin.
    """

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="releases")
    plugin = models.ForeignKey(Plugin, on_delete=models.PROTECT, related_name="+")
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="devices")
    rollout = models.ForeignKey(
        "Rollout", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    since = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["device", "plugin"]
        constraints = [
            models.UniqueConstraint(fields=["device", "plugin"], name="rollouts_devicerelease_one")
        ]

    def __str__(self) -> str:
        return f"{self.device}: {self.release}"


class Assignment(models.Model):
    """A standing rule: devices that join ``target`` later get ``plugin_version``.

    A completed rollout leaves one for its target. It applies to a device that enrolls or
    gains a tag and has no release of the plugin yet; the most specific covering rule wins
    (device over tag over all), the newest among equals. Deleting one uninstalls nothing.
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


def _percent() -> list[MinValueValidator | MaxValueValidator]:
    return [MinValueValidator(0), MaxValueValidator(100)]


class Rollout(models.Model):
    """An approved version shipped to a target in waves, each gated on the devices' health.

    A wave passes when ``success_pct`` of its devices ran the version within the thresholds
    for ``soak_s``; it halts the rollout when ``error_count`` devices or ``error_pct`` of them
    failed. A device fails when it refuses the release, reverts or quarantines it, traps
    more than ``max_traps`` times, or errs on more than ``max_error_pct`` of its requests.
    """

    plugin = models.ForeignKey(Plugin, on_delete=models.PROTECT, related_name="rollouts")
    version = models.ForeignKey(PluginVersion, on_delete=models.PROTECT, related_name="rollouts")
    release = models.ForeignKey(
        Release, on_delete=models.PROTECT, null=True, blank=True, related_name="rollouts"
    )
    target = models.CharField(max_length=8, choices=RolloutTarget.choices)
    tag = models.ForeignKey(
        Tag, on_delete=models.PROTECT, null=True, blank=True, related_name="rollouts"
    )
    target_devices = models.ManyToManyField(Device, blank=True, related_name="targeted_by")
    status = models.CharField(
        max_length=12,
        choices=RolloutStatus.choices,
        default=RolloutStatus.SCHEDULED,
        db_index=True,
    )
    waves = models.JSONField(
        default=default_waves,
        help_text="Cumulative percentages, e.g. [5, 25, 100]; the canary first.",
    )
    soak_s = models.PositiveIntegerField(
        default=300, help_text="How long a wave must stay healthy."
    )
    wave_timeout_s = models.PositiveIntegerField(
        default=1800, help_text="How long a wave waits for a device that does not report."
    )
    on_timeout = models.CharField(max_length=4, choices=OnTimeout.choices, default=OnTimeout.SKIP)
    success_pct = models.FloatField(default=90.0, validators=_percent())
    error_count = models.PositiveIntegerField(
        default=5, validators=[MinValueValidator(1)], help_text="Failed devices that halt it."
    )
    error_pct = models.FloatField(
        default=10.0, validators=_percent(), help_text="…or this share of a wave's devices."
    )
    max_traps = models.PositiveIntegerField(
        default=2, help_text="Traps a device may have before it counts as failed."
    )
    max_error_pct = models.FloatField(default=5.0, validators=_percent())
    min_requests = models.PositiveIntegerField(
        default=20, help_text="Requests before a device's error share counts."
    )
    auto_rollback = models.BooleanField(default=True, help_text="Roll back when it halts.")
    scheduled_at = models.DateTimeField(null=True, blank=True, help_text="Empty: start now.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    halt_reason = models.TextField(blank=True)
    replaced_rule_version = models.ForeignKey(
        PluginVersion,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The standing assignment's version before it completed.",
    )
    evaluation_requested_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(target=RolloutTarget.TAG, tag__isnull=False)
                    | (~Q(target=RolloutTarget.TAG) & Q(tag__isnull=True))
                ),
                name="rollouts_rollout_tag_iff_tag_target",
            )
        ]

    def __str__(self) -> str:
        return f"rollout #{self.pk} of {self.version} to {self.target_label}"

    @property
    def target_label(self) -> str:
        if self.target == RolloutTarget.TAG:
            return f"tag {self.tag}"
        if self.target == RolloutTarget.DEVICES:
            return "listed devices"
        return "all devices"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        version = self.version if self.version_id else None
        if version is not None and version.status != VersionStatus.APPROVED:
            errors["version"] = f"{version} is not approved; only signed versions ship"
        if version is not None and self.plugin_id and version.plugin_id != self.plugin_id:
            errors["version"] = f"{version} is not a version of this plugin"
        if self.target == RolloutTarget.TAG and self.tag_id is None:
            errors["tag"] = "choose the tag whose devices get this version"
        if self.target != RolloutTarget.TAG and self.tag_id is not None:
            errors["tag"] = "a tag is only for rollouts that target a tag"
        waves = self.waves
        if (
            not isinstance(waves, list)
            or not waves
            or not all(isinstance(p, int | float) and 0 < p <= 100 for p in waves)
            or list(waves) != sorted(set(waves))
            or waves[-1] != 100
        ):
            errors["waves"] = (
                "waves are rising cumulative percentages from 1 to 100 ending at 100, "
                "e.g. [5, 25, 100]"
            )
        elif len(waves) > 20:
            errors["waves"] = "at most 20 waves"
        if errors:
            raise ValidationError(errors)


class Wave(models.Model):
    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="wave_set")
    index = models.PositiveSmallIntegerField()
    percent = models.FloatField()
    size = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=10, choices=WaveStatus.choices, default=WaveStatus.PENDING)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    delivered = models.PositiveIntegerField(
        default=0, help_text="Devices whose release and desired state are written."
    )
    delivered_through = models.BigIntegerField(
        null=True, blank=True, help_text="The last member (by pk) delivered: the resume point."
    )
    delivered_at = models.DateTimeField(
        null=True, blank=True, help_text="Every device's desired state written; judged after."
    )

    class Meta:
        ordering = ["rollout", "index"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "index"], name="rollouts_wave_unique_index")
        ]

    def __str__(self) -> str:
        return f"{self.label} of rollout #{self.rollout_id}"

    @property
    def label(self) -> str:
        return "canary" if self.index == 0 else f"wave {self.index + 1}"


class StaleDesiredState(models.Model):
    """A device whose releases changed and whose signed desired state is not rebuilt yet.

    Written in the transaction that changes the releases, deleted in the one that re-signs,
    so a worker that dies in between leaves the work on record for the next job or tick.
    """

    device = models.OneToOneField(
        Device, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    since = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.device_id}: desired state to rebuild since {self.since:%Y-%m-%d %H:%M:%S}"


class Member(models.Model):
    """One device of a rollout: its wave, what it ran before, and where it stands."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="members")
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="rollout_members")
    wave = models.PositiveSmallIntegerField()
    previous_release = models.ForeignKey(
        Release, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    state = models.CharField(
        max_length=12, choices=MemberState.choices, default=MemberState.PENDING
    )
    reason = models.CharField(max_length=300, blank=True)
    baseline = models.JSONField(
        default=dict, blank=True, help_text="The version's health counters when its wave started."
    )
    installed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["rollout", "wave", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "device"], name="rollouts_member_unique")
        ]
        indexes = [models.Index(fields=["device", "rollout"], name="rollouts_member_device")]

    def __str__(self) -> str:
        return f"{self.device} in rollout #{self.rollout_id}: {self.state}"


class Decision(models.Model):
    """Something the rollout engine or an operator decided, and why, with the numbers."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="decisions")
    at = models.DateTimeField()
    kind = models.CharField(max_length=12, choices=DecisionKind.choices)
    wave = models.PositiveSmallIntegerField(null=True, blank=True)
    detail = models.TextField()
    counts = models.JSONField(default=dict, blank=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["rollout", "at", "pk"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"
