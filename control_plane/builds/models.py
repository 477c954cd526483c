"""Device classes the control plane compiles for, and each version's artifact per class."""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models

from control_plane.builds.choices import ArtifactState
from fleet_common.compiler.settings import TARGETS, EngineSettings

HEX64 = RegexValidator(r"^[0-9a-f]{64}$", "must be 64 lowercase hex digits (a SHA-256)")


class DeviceClass(models.Model):
    """A kind of device that loads the same compiled code: a target and its ISA features.

    Devices are matched to artifacts by engine key, not by class: the key a device reports
    is what its engine accepts, exactly. A class says what to compile; its ``engine_key``
    is the one its last compile reported.
    """

    name = models.SlugField(max_length=40, unique=True)
    description = models.CharField(max_length=200, blank=True)
    target = models.CharField(max_length=40, choices=[(t, t) for t in TARGETS])
    features = models.JSONField(
        default=list,
        blank=True,
        help_text="Cranelift ISA flags beyond the target's baseline, e.g. has_lse.",
    )
    enabled = models.BooleanField(default=True, help_text="Compile new versions for it.")
    engine_key = models.CharField(max_length=64, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "device classes"

    def __str__(self) -> str:
        return self.name

    @property
    def settings(self) -> EngineSettings:
        return EngineSettings(target=self.target, features=tuple(self.features))


class CompiledArtifact(models.Model):
    """One version compiled for one class: its state, the file, and the signed statement.

    The file is stored zstd-compressed by the SHA-256 of the raw artifact. The statement
    is signed once the version is approved (it names the release's serial).
    """

    version = models.ForeignKey(
        "plugins.PluginVersion", on_delete=models.CASCADE, related_name="artifacts"
    )
    device_class = models.ForeignKey(DeviceClass, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(
        max_length=16, choices=ArtifactState.choices, default=ArtifactState.QUEUED, db_index=True
    )
    engine_key = models.CharField(max_length=64, blank=True, db_index=True)
    sha256 = models.CharField(max_length=64, blank=True, validators=[HEX64])
    size = models.PositiveBigIntegerField(null=True, blank=True)
    compressed_size = models.PositiveBigIntegerField(null=True, blank=True)
    envelope = models.JSONField(null=True, blank=True, editable=False)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    compile_seconds = models.FloatField(null=True, blank=True)
    peak_rss_mib = models.FloatField(null=True, blank=True, help_text="Of the compiler process.")

    class Meta:
        ordering = ["version", "device_class__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "device_class"], name="builds_artifact_unique_per_class"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version} for {self.device_class}"
