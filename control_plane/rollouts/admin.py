"""Admin for rollouts (create, pause, resume, abort, roll back) and standing assignments.

Every change goes through `rollouts.services`; the admin never writes a release itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from control_plane.admin_support import RefusableAddMixin, acting_user
from control_plane.errors import error_messages
from control_plane.plugins.choices import VersionStatus
from control_plane.plugins.models import PluginVersion
from control_plane.rollouts.models import Assignment, Decision, Rollout
from control_plane.rollouts.selectors import delivery_progress
from control_plane.rollouts.services import (
    abort_rollout,
    create_rollout,
    pause_rollout,
    remove_standing_assignment,
    resume_rollout,
    roll_back_rollout,
)
from control_plane.signing import SigningKeyError

DECISION_FIELDS = ("at", "kind", "wave", "detail", "counts", "by")
SETTINGS = (
    "waves",
    "soak_s",
    "wave_timeout_s",
    "on_timeout",
    "success_pct",
    "error_count",
    "error_pct",
    "max_traps",
    "max_error_pct",
    "min_requests",
    "auto_rollback",
    "scheduled_at",
)


class DecisionInline(admin.TabularInline[Decision, Rollout]):
    model = Decision
    extra = 0
    fields = DECISION_FIELDS
    readonly_fields = DECISION_FIELDS
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _action(
    service: Callable[..., Rollout], verb: str
) -> Callable[[Any, HttpRequest, QuerySet[Rollout]], None]:
    def act(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Rollout]) -> None:
        for rollout in queryset:
            try:
                service(rollout=rollout, by=acting_user(request))
            except (ValidationError, SigningKeyError) as exc:
                problems = error_messages(exc) if isinstance(exc, ValidationError) else [str(exc)]
                for problem in problems:
                    modeladmin.message_user(request, problem, messages.ERROR)
            else:
                modeladmin.message_user(request, f"{verb} {rollout}")

    act.__name__ = f"{verb.replace(' ', '_')}_selected"
    act.short_description = f"{verb.capitalize()} the selected rollouts"  # type: ignore[attr-defined]
    return act


@admin.register(Rollout)
class RolloutAdmin(RefusableAddMixin[Rollout]):
    list_display = ["__str__", "status", "progress", "target_label", "started_at", "rollout_page"]
    list_filter = ["status", "plugin"]
    list_select_related = ["version__plugin", "tag"]
    autocomplete_fields = ["target_devices"]
    actions = [
        _action(pause_rollout, "paused"),
        _action(resume_rollout, "resumed"),
        _action(abort_rollout, "aborted"),
        _action(roll_back_rollout, "rolled back"),
    ]

    def get_inlines(self, request: HttpRequest, obj: Rollout | None = None) -> list[Any]:
        return [] if obj is None else [DecisionInline]

    def get_fields(self, request: HttpRequest, obj: Rollout | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("version", "target", "tag", "target_devices", *SETTINGS)
        return ("version", "target", "tag", "status", "progress", "halt_reason", *SETTINGS)

    def get_readonly_fields(
        self, request: HttpRequest, obj: Rollout | None = None
    ) -> tuple[str, ...]:
        return () if obj is None else self.get_fields(request, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "version":
            kwargs["queryset"] = PluginVersion.objects.filter(
                status=VersionStatus.APPROVED
            ).select_related("plugin")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("target", "all")
        return initial

    @admin.display(description="progress")
    def progress(self, rollout: Rollout) -> str:
        return str(delivery_progress(rollout)["text"])

    @admin.display(description="page")
    def rollout_page(self, rollout: Rollout) -> str:
        return format_html('<a href="{}">open</a>', reverse("rollouts:detail", args=[rollout.pk]))

    def save_model(
        self, request: HttpRequest, obj: Rollout, form: ModelForm[Rollout], change: bool
    ) -> None:
        data = form.cleaned_data
        try:
            rollout = create_rollout(
                version=data["version"],
                target=data["target"],
                tag=data.get("tag"),
                devices=list(data.get("target_devices") or []),
                created_by=acting_user(request),
                **{name: data[name] for name in SETTINGS if name in data},
            )
        except (ValidationError, SigningKeyError) as exc:
            problems = error_messages(exc) if isinstance(exc, ValidationError) else [str(exc)]
            for message in problems:
                self.message_user(request, f"Not started: {message}", messages.ERROR)
            return
        obj.pk, obj._state = rollout.pk, rollout._state
        self.message_user(
            request,
            f"{rollout} recorded; the job worker plans its waves and writes the desired states "
            "(its page shows the progress).",
        )

    def save_related(
        self, request: HttpRequest, form: ModelForm[Rollout], formsets: Any, change: bool
    ) -> None:
        """`create_rollout` stored the target devices already; inlines are read-only."""

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the record of what shipped where stays; abort or roll back instead


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin[Assignment]):
    """Standing assignments: what devices joining a target get. Completed rollouts make
    them; deleting one uninstalls nothing (that is `uninstall_plugin`)."""

    list_display = ["plugin_version", "target_label", "created_by", "created_at"]
    list_filter = ["target", "plugin_version__plugin"]
    list_select_related = ["plugin_version__plugin", "tag", "device", "created_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Assignment) -> None:
        remove_standing_assignment(assignment=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Assignment]) -> None:
        for assignment in queryset:
            remove_standing_assignment(assignment=assignment)
