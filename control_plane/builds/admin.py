"""Admin for device classes (what to compile for) and compiled artifacts (what came of it)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.html import format_html

from control_plane.builds.choices import ArtifactState
from control_plane.builds.models import CompiledArtifact, DeviceClass
from control_plane.builds.services import compile_approved_for, enqueue_compiles
from control_plane.devices.models import Device
from control_plane.plugins.choices import VersionStatus
from control_plane.plugins.models import PluginVersion
from fleet_common.compiler.settings import EngineSettings, SettingsError

RECOMPILE_PERMISSION = "builds.change_compiledartifact"
COMPILABLE = (VersionStatus.PENDING, VersionStatus.APPROVED)
"""Versions whose component is kept and checked: the only ones worth compiling again."""
ARTIFACT_FIELDS = (
    "version",
    "device_class",
    "state",
    "error",
    "engine_key",
    "sha256",
    "size_mib",
    "compressed_size_mib",
    "attempts",
    "queued_at",
    "started_at",
    "finished_at",
    "compile_seconds",
    "peak_rss_mib",
    "signature",
)
"""What an artifact's page shows, all of it read-only: the jobs write artifacts."""


def short_key(engine_key: str) -> str:
    """An engine key as the admin shows it: 12 hex digits, the full key on hover."""
    if not engine_key:
        return format_html('<span class="quiet">{}</span>', "not known yet")
    return format_html('<code title="{}">{}</code>', engine_key, engine_key[:12])


def mib(size: int | None) -> str:
    return "" if size is None else f"{size / (1024 * 1024):.1f} MiB"


class DeviceClassForm(forms.ModelForm[DeviceClass]):
    """Features typed as flags separated by spaces or commas, checked as an engine would."""

    features = forms.CharField(
        required=False,
        help_text="Cranelift ISA flags beyond the target's baseline, separated by spaces or "
        "commas, e.g. has_lse has_fp16. A device gets these artifacts only if its engine "
        "enables exactly the same flags.",
    )

    class Meta:
        model = DeviceClass
        fields = ["name", "description", "target", "features", "enabled"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["features"] = " ".join(self.instance.features)

    def clean_features(self) -> list[str]:
        return str(self.cleaned_data["features"]).replace(",", " ").split()

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        target, features = cleaned.get("target"), cleaned.get("features")
        if target is None or features is None:
            return cleaned  # the field's own error is shown already
        try:
            settings = EngineSettings(target=target, features=tuple(features))
        except SettingsError as exc:
            self.add_error("features", str(exc))
        else:
            cleaned["features"] = list(settings.features)  # sorted, each once
        return cleaned


@admin.register(DeviceClass)
class DeviceClassAdmin(admin.ModelAdmin[DeviceClass]):
    form = DeviceClassForm
    list_display = [
        "name",
        "target",
        "feature_list",
        "enabled",
        "engine_key_short",
        "devices_reporting",
        "description",
    ]
    list_filter = ["enabled", "target"]
    readonly_fields = ["engine_key_short"]
    actions = ["compile_approved"]

    @admin.action(description="Compile every approved version for selected classes")
    def compile_approved(self, request: HttpRequest, queryset: QuerySet[DeviceClass]) -> None:
        for device_class in queryset:
            if not device_class.enabled:
                self.message_user(request, f"{device_class} is disabled.", messages.WARNING)
                continue
            queued = compile_approved_for(device_class)
            self.message_user(
                request,
                f"Queued {len(queued)} approved version(s) to compile for {device_class}.",
                messages.SUCCESS,
            )

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeviceClass]:
        reporting = (
            Device.objects.filter(engine_key=OuterRef("engine_key"))
            .exclude(engine_key="")
            .order_by()
            .values("engine_key")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                device_count=Coalesce(Subquery(reporting, output_field=IntegerField()), Value(0))
            )
        )

    def save_model(
        self, request: HttpRequest, obj: DeviceClass, form: ModelForm[DeviceClass], change: bool
    ) -> None:
        """A new target or new features make new code: the class's engine key is then
        unknown until its next compile reports it."""
        recompiled = change and bool({"target", "features"} & set(form.changed_data))
        if recompiled:
            obj.engine_key = ""
        super().save_model(request, obj, form, change)
        if recompiled:
            self.message_user(
                request,
                f"{obj} now compiles for {obj.target} {' '.join(obj.features)}: versions "
                "compiled from now on need devices whose engine reports the new key; "
                "artifacts compiled before keep serving devices with the old one.",
                messages.WARNING,
            )

    @admin.display(description="features")
    def feature_list(self, device_class: DeviceClass) -> str:
        return " ".join(device_class.features) or "baseline"

    @admin.display(description="engine key")
    def engine_key_short(self, device_class: DeviceClass) -> str:
        return short_key(device_class.engine_key)

    @admin.display(description="devices reporting its key", ordering="device_count")
    def devices_reporting(self, device_class: DeviceClass) -> int:
        return device_class.device_count  # type: ignore[attr-defined,no-any-return]


@admin.register(CompiledArtifact)
class CompiledArtifactAdmin(admin.ModelAdmin[CompiledArtifact]):
    """Read-only: compiles are written by the jobs; a failed one can be queued again."""

    list_display = [
        "version",
        "device_class",
        "state",
        "attempts",
        "compile_seconds",
        "peak_rss_mib",
        "size_mib",
        "signed",
        "finished_at",
    ]
    list_filter = ["state", "device_class"]
    list_select_related = ["version__plugin", "device_class"]
    search_fields = ["version__plugin__name", "version__version", "engine_key", "sha256"]
    actions = ["compile_again"]
    fields = ARTIFACT_FIELDS
    readonly_fields = ARTIFACT_FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the check and the compile jobs create them

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # they go with their version

    def has_compile_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RECOMPILE_PERMISSION)

    @admin.action(description="Compile again (failed ones)", permissions=["compile"])
    def compile_again(self, request: HttpRequest, queryset: QuerySet[CompiledArtifact]) -> None:
        """Queues the version's compiles again: every artifact of it that is not ready,
        for every enabled class."""
        versions: dict[int, PluginVersion] = {}
        for artifact in queryset.select_related("version__plugin", "device_class"):
            refusal = _recompile_refusal(artifact)
            if refusal is not None:
                self.message_user(request, refusal, messages.WARNING)
            else:
                versions.setdefault(artifact.version_id, artifact.version)
        for version in versions.values():
            queued = enqueue_compiles(version)
            classes = (
                CompiledArtifact.objects.filter(pk__in=queued)
                .order_by("device_class__name")
                .values_list("device_class__name", flat=True)
            )
            self.message_user(
                request,
                f"Queued {version} to compile again for {', '.join(classes)}.",
                messages.SUCCESS,
            )

    @admin.display(description="size", ordering="size")
    def size_mib(self, artifact: CompiledArtifact) -> str:
        return mib(artifact.size)

    @admin.display(description="stored (zstd)")
    def compressed_size_mib(self, artifact: CompiledArtifact) -> str:
        return mib(artifact.compressed_size)

    @admin.display(description="signed", boolean=True)
    def signed(self, artifact: CompiledArtifact) -> bool:
        return artifact.envelope is not None

    @admin.display(description="signed statement")
    def signature(self, artifact: CompiledArtifact) -> str:
        if artifact.envelope is None:
            return format_html('<span class="quiet">{}</span>', "not signed")
        return format_html("signed with key <code>{}</code>", artifact.envelope["key_id"])


def _recompile_refusal(artifact: CompiledArtifact) -> str | None:
    """Why compiling this artifact again would do nothing, or None."""
    if artifact.state != ArtifactState.FAILED:
        return f"{artifact} is {artifact.get_state_display()}: only failed compiles run again."
    if not artifact.device_class.enabled:
        return f"{artifact}: the class {artifact.device_class} is disabled; enable it first."
    version = artifact.version
    if version.status not in COMPILABLE:
        return f"{artifact}: {version} is {version.get_status_display()}; nothing to compile."
    return None
