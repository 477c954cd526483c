"""Admin for assignments: create and delete only, each re-signing the affected devices."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from control_plane.admin_support import RefusableAddMixin
from control_plane.errors import error_messages
from control_plane.plugins.choices import VersionStatus
from control_plane.plugins.models import PluginVersion
from control_plane.plugins.signing import SigningKeyError
from control_plane.rollouts.models import Assignment
from control_plane.rollouts.services import create_assignment, delete_assignment


@admin.register(Assignment)
class AssignmentAdmin(RefusableAddMixin, admin.ModelAdmin):
    list_display = ["plugin_version", "target_label", "created_by", "created_at"]
    list_filter = ["target", "plugin_version__plugin"]
    list_select_related = ["plugin_version__plugin", "tag", "device", "created_by"]
    fields = ["plugin_version", "target", "tag", "device"]
    autocomplete_fields = ["device"]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "plugin_version":
            kwargs["queryset"] = PluginVersion.objects.filter(
                status=VersionStatus.APPROVED
            ).select_related("plugin")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(
        self, request: HttpRequest, obj: Assignment, form: ModelForm, change: bool
    ) -> None:
        try:
            assignment = create_assignment(
                plugin_version=form.cleaned_data["plugin_version"],
                target=form.cleaned_data["target"],
                tag=form.cleaned_data.get("tag"),
                device=form.cleaned_data.get("device"),
                created_by=request.user,
            )
        except (ValidationError, SigningKeyError) as exc:
            problems = error_messages(exc) if isinstance(exc, ValidationError) else [str(exc)]
            for message in problems:
                self.message_user(request, f"Not assigned: {message}", messages.ERROR)
            return
        obj.pk, obj._state, obj.created_at = assignment.pk, assignment._state, assignment.created_at

    def delete_model(self, request: HttpRequest, obj: Assignment) -> None:
        delete_assignment(assignment=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Assignment]) -> None:
        for assignment in queryset:
            delete_assignment(assignment=assignment)
