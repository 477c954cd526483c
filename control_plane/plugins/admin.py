"""Admin for plugins: upload (validated by the service), review, approve and sign, reject."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime

from control_plane.admin_support import RefusableAddMixin, acting_user
from control_plane.builds.choices import ArtifactState
from control_plane.builds.models import CompiledArtifact, DeviceClass
from control_plane.devices.choices import EventKind
from control_plane.devices.models import DeviceEvent
from control_plane.errors import error_messages
from control_plane.plugins.capabilities import capability_diff
from control_plane.plugins.choices import VersionStatus
from control_plane.plugins.forms import PluginVersionUploadForm
from control_plane.plugins.models import Plugin, PluginVersion
from control_plane.plugins.selectors import version_outcome
from control_plane.plugins.services import (
    approve_plugin_version,
    reject_plugin_version,
    upload_plugin_version,
)
from control_plane.signing import SigningKeyError

APPROVE_PERMISSION = "plugins.approve_pluginversion"
MISSING_ARTIFACT_EVENTS = 20
ARTIFACT_COLUMNS = (
    "class",
    "state",
    "engine key",
    "size",
    "compile time",
    "peak RSS",
    "attempts",
    "signed",
    "error",
)


def _bullets(items: list[str], empty: str = "none") -> str:
    if not items:
        return format_html('<span class="quiet">{}</span>', empty)
    return format_html_join("", "<div>{}</div>", ((item,) for item in items))


@admin.register(Plugin)
class PluginAdmin(admin.ModelAdmin[Plugin]):
    list_display = ["name", "version_count", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["name", "created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Plugin]:
        return super().get_queryset(request).annotate(version_count=Count("versions"))

    @admin.display(description="versions", ordering="version_count")
    def version_count(self, plugin: Plugin) -> int:
        return plugin.version_count  # type: ignore[attr-defined,no-any-return]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # plugins come into being with their first uploaded version


@admin.register(PluginVersion)
class PluginVersionAdmin(RefusableAddMixin[PluginVersion]):
    list_display = [
        "__str__",
        "world",
        "status",
        "serial",
        "size_mib",
        "uploaded_by",
        "uploaded_at",
    ]
    list_filter = ["status", "world", "plugin"]
    list_select_related = ["plugin", "uploaded_by"]
    search_fields = ["plugin__name", "version", "sha256"]
    actions = ["approve", "reject"]
    add_form = PluginVersionUploadForm
    change_form_template = "admin/plugins/pluginversion/change_form.html"
    review_fieldsets = [
        (None, {"fields": ["plugin", "version", "world", "status_text", "serial"]}),
        ("On devices", {"fields": ["outcome", "rollouts"]}),
        ("What it may touch", {"fields": ["grants", "interfaces", "exports", "changes"]}),
        ("Artifact", {"fields": ["sha256", "size", "compressed_size", "manifest_json"]}),
        ("Compiled artifacts", {"fields": ["compiled_artifacts", "devices_without_artifact"]}),
        (
            "Review",
            {
                "fields": [
                    "uploaded_by",
                    "uploaded_at",
                    "reviewed_by",
                    "reviewed_at",
                    "rejection_reason",
                    "signature",
                ]
            },
        ),
    ]

    # --- upload -----------------------------------------------------------------------

    def get_form(
        self,
        request: HttpRequest,
        obj: PluginVersion | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[ModelForm[PluginVersion]]:
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return [(None, {"fields": ["component", "manifest_file", "bundle"]})]
        return self.review_fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return [field for _, options in self.review_fieldsets for field in options["fields"]]

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if object_id is None and request.method == "POST":
            # Not inside the admin's usual transaction: reading and compressing a large
            # component takes a second or more, and SQLite's IMMEDIATE transaction would
            # hold the write lock (and every heartbeat) meanwhile. The upload service makes
            # its own atomic write and queues the check once that is committed.
            response: HttpResponse = self._changeform_view(  # type: ignore[attr-defined]
                request, object_id, form_url, extra_context
            )
            return response
        if object_id is not None:
            extra_context = {
                **(extra_context or {}),
                "show_save": False,
                "show_save_and_continue": False,
                "show_save_and_add_another": False,
                "can_review": request.user.has_perm(APPROVE_PERMISSION),
            }
        return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(
        self, request: HttpRequest, obj: PluginVersion, form: ModelForm[PluginVersion], change: bool
    ) -> None:
        """Uploads through the service; a refusal becomes a message and nothing is saved."""
        try:
            version = upload_plugin_version(
                **form.upload_arguments(),  # type: ignore[attr-defined]
                uploaded_by=acting_user(request),
            )
        except ValidationError as exc:
            for message in error_messages(exc):
                self.message_user(request, f"Refused: {message}", messages.ERROR)
            return
        for field in PluginVersion._meta.concrete_fields:
            setattr(obj, field.attname, getattr(version, field.attname))
        obj._state = version._state

    def response_add(
        self, request: HttpRequest, obj: PluginVersion, post_url_continue: str | None = None
    ) -> HttpResponse:
        if obj.pk is None:
            return super().response_add(request, obj, post_url_continue)
        self.message_user(
            request,
            f"Uploaded {obj}: it is being checked in the background (the contract check, "
            "then a compile per device class); this page shows the verdict.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:plugins_pluginversion_change", args=[obj.pk]))

    # --- review -------------------------------------------------------------------------

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # versions are the fleet's history; reject instead

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(APPROVE_PERMISSION)

    @admin.action(description="Approve and sign selected versions", permissions=["approve"])
    def approve(self, request: HttpRequest, queryset: QuerySet[PluginVersion]) -> None:
        for version in queryset.select_related("plugin"):
            try:
                approved = approve_plugin_version(version=version, approved_by=acting_user(request))
            except ValidationError as exc:
                self.message_user(request, _approval_refusal(version, exc), messages.ERROR)
            except SigningKeyError as exc:
                self.message_user(request, f"Cannot sign: {exc}", messages.ERROR)
                return
            else:
                self.message_user(request, _approval_done(approved), messages.SUCCESS)

    @admin.action(description="Reject selected versions", permissions=["approve"])
    def reject(self, request: HttpRequest, queryset: QuerySet[PluginVersion]) -> None:
        for version in queryset.select_related("plugin"):
            try:
                rejected = reject_plugin_version(version=version, rejected_by=acting_user(request))
            except ValidationError as exc:
                self.message_user(request, " ".join(error_messages(exc)), messages.ERROR)
            else:
                self.message_user(request, f"Rejected {rejected}.", messages.WARNING)

    # --- read-only displays ---------------------------------------------------------------

    @admin.display(description="status")
    def status_text(self, version: PluginVersion) -> str:
        if version.status == VersionStatus.CHECKING:
            return format_html(
                '{} <span class="quiet">{}</span>',
                version.get_status_display(),
                "(the contract check runs in the background; reload for its verdict)",
            )
        if version.status == VersionStatus.INVALID:
            return format_html(
                '<span class="problem">invalid: {}</span>', version.problem or "refused"
            )
        return str(version.get_status_display())

    @admin.display(description="per device class")
    def compiled_artifacts(self, version: PluginVersion) -> str:
        artifacts = {
            artifact.device_class_id: artifact
            for artifact in CompiledArtifact.objects.filter(version=version)
        }
        rows = [
            _artifact_row(version, device_class, artifacts.get(device_class.pk))
            for device_class in DeviceClass.objects.order_by("name")
            if device_class.enabled or device_class.pk in artifacts
        ]
        if not rows:
            return format_html('<span class="quiet">{}</span>', "no device class is enabled")
        cells = "".join("<td>{}</td>" for _ in ARTIFACT_COLUMNS)
        return format_html(
            '<table class="compiled-artifacts"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
            format_html_join("", "<th>{}</th>", ((column,) for column in ARTIFACT_COLUMNS)),
            format_html_join("", f"<tr>{cells}</tr>", rows),
        )

    @admin.display(description="devices without an artifact")
    def devices_without_artifact(self, version: PluginVersion) -> str:
        events = list(
            DeviceEvent.objects.filter(
                plugin=version.plugin.name,
                version=version.version,
                kind=EventKind.NO_ARTIFACT,
            )
            .select_related("device")
            .order_by("-at")[:MISSING_ARTIFACT_EVENTS]
        )
        if not events:
            return format_html('<span class="quiet">{}</span>', "no device reported one missing")
        return format_html_join(
            "",
            '<div><a href="{}">{}</a> at {}: {}</div>',
            (
                (
                    reverse("admin:devices_device_change", args=[event.device_id]),
                    event.device.name,
                    localtime(event.at).strftime("%Y-%m-%d %H:%M:%S"),
                    event.detail or "no detail",
                )
                for event in events
            ),
        )

    @admin.display(description="what devices report")
    def outcome(self, version: PluginVersion) -> str:
        """The version's real outcome: devices that ran it, and how its installs ended."""
        outcome = version_outcome(version)
        if not outcome.reported:
            return format_html('<span class="quiet">{}</span>', "no device has reported it yet")
        parts = [(str(outcome.ran), "ran it")] + [
            (str(count), kind) for kind, count in outcome.devices_by_kind.items()
        ]
        link = reverse("devices:version", args=[version.plugin.name, version.version])
        return format_html(
            '{} · <a href="{}">which devices</a>',
            format_html_join(" · ", "{} {}", parts),
            link,
        )

    @admin.display(description="rollouts")
    def rollouts(self, version: PluginVersion) -> str:
        """Its rollouts, or, once approved, the way to start one: approval ships nothing."""
        started = list(version.rollouts.order_by("-created_at")[:10])
        start = ""
        if version.status == VersionStatus.APPROVED:
            start = format_html(
                '<a class="button" href="{}?version={}">Start a rollout</a>',
                reverse("admin:rollouts_rollout_add"),
                version.pk,
            )
        if not started:
            quiet = format_html(
                '<span class="quiet">{}</span>',
                "none yet: approved versions reach devices only through a rollout"
                if version.status == VersionStatus.APPROVED
                else "none",
            )
            return format_html("{} {}", quiet, start)
        return format_html(
            "{}{}",
            format_html_join(
                "",
                '<div><a href="{}">{}</a>: {}</div>',
                (
                    (reverse("rollouts:detail", args=[r.pk]), str(r), r.get_status_display())
                    for r in started
                ),
            ),
            start,
        )

    @admin.display(description="size")
    def size_mib(self, version: PluginVersion) -> str:
        return f"{version.size / (1024 * 1024):.1f} MiB"

    @admin.display(description="granted by its manifest")
    def grants(self, version: PluginVersion) -> str:
        return _bullets(version.capabilities.get("grants", []), "no hardware, no storage")

    @admin.display(description="contract interfaces it imports")
    def interfaces(self, version: PluginVersion) -> str:
        return _bullets(version.capabilities.get("imports", []))

    @admin.display(description="contract interfaces it exports")
    def exports(self, version: PluginVersion) -> str:
        return _bullets(version.capabilities.get("exports", []))

    @admin.display(description="changes from what devices run")
    def changes(self, version: PluginVersion) -> str:
        diff = capability_diff(version)
        if diff.previous is None:
            return format_html('<span class="quiet">{}</span>', diff.heading)
        if diff.unchanged:
            return format_html('<span class="quiet">{}: no change</span>', diff.heading)
        return format_html("<div>{}:</div>{}", diff.heading, _bullets(diff.describe()))

    @admin.display(description="manifest")
    def manifest_json(self, version: PluginVersion) -> str:
        return format_html("<pre>{}</pre>", json.dumps(version.manifest, indent=2))

    @admin.display(description="signed release")
    def signature(self, version: PluginVersion) -> str:
        if version.status != VersionStatus.APPROVED or not version.release_envelope:
            return format_html('<span class="quiet">{}</span>', "not signed")
        return format_html(
            "serial {}, signed with key <code>{}</code>",
            version.serial,
            version.release_envelope["key_id"],
        )


def _artifact_row(
    version: PluginVersion, device_class: DeviceClass, artifact: CompiledArtifact | None
) -> tuple[str, ...]:
    """One class's line in the version's compiled artifacts table (see ARTIFACT_COLUMNS)."""
    name = format_html(
        '<span title="{} {}">{}</span>',
        device_class.target,
        " ".join(device_class.features),
        device_class.name,
    )
    if artifact is None:
        if not device_class.enabled:
            state = "not compiled: the class is disabled"
        elif version.status == VersionStatus.CHECKING:
            state = "waits for the check"
        elif version.status == VersionStatus.INVALID:
            state = "not compiled: the check refused the version"
        else:
            state = "not compiled"
        return (name, state, "", "", "", "", "", "", "")
    ready = artifact.state == ArtifactState.READY
    if not ready:
        signed = ""
    elif artifact.envelope is not None:
        signed = "signed"
    else:
        signed = "when approved" if not version.is_approved else "not signed"
    return (
        name,
        artifact.get_state_display(),
        format_html('<code title="{}">{}</code>', artifact.engine_key, artifact.engine_key[:12]),
        "" if artifact.size is None else f"{artifact.size / (1024 * 1024):.1f} MiB",
        "" if artifact.compile_seconds is None else f"{artifact.compile_seconds:.1f} s",
        "" if artifact.peak_rss_mib is None else f"{artifact.peak_rss_mib:.0f} MiB",
        str(artifact.attempts),
        signed,
        format_html('<span class="problem">{}</span>', artifact.error) if artifact.error else "",
    )


def _approval_refusal(version: PluginVersion, error: ValidationError) -> str:
    """The service's refusal, worded for a version whose check has not finished."""
    version.refresh_from_db(fields=["status", "problem"])
    if version.status == VersionStatus.CHECKING:
        return f"{version} is still being checked; approve it when the check finished."
    if version.status == VersionStatus.INVALID:
        return f"{version} is invalid and cannot be approved: {version.problem}"
    return " ".join(error_messages(error))


def _approval_done(version: PluginVersion) -> str:
    """What approving signed, and which compiles are signed when they finish."""
    artifacts = list(
        version.artifacts.select_related("device_class").order_by("device_class__name")
    )
    signed = [str(a.device_class) for a in artifacts if a.envelope is not None]
    later = [
        str(a.device_class)
        for a in artifacts
        if a.state in (ArtifactState.QUEUED, ArtifactState.COMPILING)
    ]
    message = f"Approved {version} as serial {version.serial}; signed"
    if signed:
        message += f", with its compiled artifacts for {', '.join(signed)}"
    if later:
        message += f"; those for {', '.join(later)} are signed when their compile finished"
    return message + ". Nothing ships until you start a rollout of it (on its page)."
