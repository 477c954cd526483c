"""Plugins and their uploaded versions, with what each may touch and its signed release."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from control_plane.plugins.choices import VersionStatus


class Plugin(models.Model):
    """A plugin by name; its versions carry the code, the manifest and the signature."""

    name = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PluginVersion(models.Model):
    """One uploaded version of a plugin: a component plus its manifest.

    The component is stored on disk by content (``<sha256>.wasm.zst``). A background job
    checks it against the contract and compiles it per device class (`builds`); approval
    gives it the plugin's next serial and signs its release and its compiled artifacts;
    only then can it be assigned to devices.
    """

    plugin = models.ForeignKey(Plugin, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(max_length=64)
    world = models.CharField(max_length=32)
    manifest = models.JSONField(help_text="The manifest, in its file's schema.")
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.PositiveBigIntegerField(help_text="Bytes of the raw component.")
    compressed_size = models.PositiveBigIntegerField(help_text="Bytes stored (zstd).")
    capabilities = models.JSONField(
        default=dict, help_text="Granted capabilities and the contract interfaces it uses."
    )
    status = models.CharField(
        max_length=16, choices=VersionStatus.choices, default=VersionStatus.CHECKING, db_index=True
    )
    problem = models.TextField(blank=True, help_text="Why the check refused it.")
    footprint = models.JSONField(
        null=True, blank=True, editable=False, help_text="What one instance allocates."
    )
    serial = models.PositiveIntegerField(null=True, blank=True, editable=False)
    release_envelope = models.JSONField(null=True, blank=True, editable=False)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["plugin__name", "-uploaded_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["plugin", "version"], name="plugins_pluginversion_unique_version"
            ),
            models.UniqueConstraint(
                fields=["plugin", "serial"], name="plugins_pluginversion_unique_serial"
            ),
            models.CheckConstraint(
                condition=(
                    Q(status=VersionStatus.APPROVED, serial__isnull=False)
                    | (~Q(status=VersionStatus.APPROVED) & Q(serial__isnull=True))
                ),
                name="plugins_pluginversion_serial_iff_approved",
            ),
        ]
        permissions = [("approve_pluginversion", "Can approve (sign) or reject plugin versions")]

    def __str__(self) -> str:
        return f"{self.plugin.name} {self.version}"

    @property
    def is_approved(self) -> bool:
        return self.status == VersionStatus.APPROVED


class Release(models.Model):
    """A signed promise that devices may run ``version`` under ``serial``.

    Approval issues a version's first release. Rolling back issues another release of
    an older version under a new, higher serial: devices never accept a lower serial than
    one they installed (rollback protection), so going back is always a step forward.
    """

    plugin = models.ForeignKey(Plugin, on_delete=models.PROTECT, related_name="releases")
    version = models.ForeignKey(PluginVersion, on_delete=models.PROTECT, related_name="releases")
    serial = models.PositiveIntegerField()
    envelope = models.JSONField(help_text="The signed release statement's envelope.")
    reason = models.CharField(max_length=200, help_text="Why it was issued.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["plugin__name", "-serial"]
        constraints = [
            models.UniqueConstraint(
                fields=["plugin", "serial"], name="plugins_release_unique_serial"
            )
        ]

    def __str__(self) -> str:
        return f"{self.version} (serial {self.serial})"
