"""Admin helpers shared by the apps: service-backed adds that can be refused, and who acts."""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib import admin
from django.contrib.auth.models import User
from django.db.models import Model
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

_ModelT = TypeVar("_ModelT", bound=Model)


def acting_user(request: HttpRequest) -> User | None:
    """The signed-in user a service should record (``created_by``, ``approved_by``), if any.

    ``request.user`` may be anonymous as far as the types go, even where the admin lets
    only staff in; a user foreign key takes a real user or nothing.
    """
    user = request.user
    return user if isinstance(user, User) else None


class RefusableAddMixin(admin.ModelAdmin[_ModelT]):
    """For admins whose ``save_model`` calls a service that may refuse.

    A refused ``save_model`` leaves the object unsaved after messaging the user why; this
    mixin then skips the log entry and the related objects and sends the user back to the
    empty add form.
    """

    def save_related(
        self, request: HttpRequest, form: ModelForm[_ModelT], formsets: Any, change: bool
    ) -> None:
        if form.instance.pk is not None:
            super().save_related(request, form, formsets, change)

    def log_addition(self, request: HttpRequest, obj: _ModelT, message: Any) -> Any:
        if obj.pk is not None:
            return super().log_addition(request, obj, message)
        return None

    def response_add(
        self, request: HttpRequest, obj: _ModelT, post_url_continue: str | None = None
    ) -> HttpResponse:
        if obj.pk is None:
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)
