"""Admin helpers shared by the apps: service-backed adds that can be refused."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect


class RefusableAddMixin(admin.ModelAdmin):  # type: ignore[type-arg]
    """For admins whose ``save_model`` calls a service that may refuse.

    A refused ``save_model`` leaves the object unsaved after messaging the user why; this
    mixin then skips the log entry and the related objects and sends the user back to the
    empty add form.
    """

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool
    ) -> None:
        if form.instance.pk is not None:
            super().save_related(request, form, formsets, change)

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if obj.pk is not None:
            return super().log_addition(request, obj, message)
        return None

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: str | None = None
    ) -> HttpResponse:
        if obj.pk is None:
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)
