"""Admin for devices, tags, enrollment tokens and reported events; writes go via services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from control_plane.admin_support import acting_user
from control_plane.devices.choices import Connectivity
from control_plane.devices.models import Device, DeviceEvent, EnrollmentToken, Tag
from control_plane.devices.services import (
    create_enrollment_token,
    delete_device,
    revoke_enrollment_token,
    update_device,
)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin[Tag]):
    list_display = ["name", "device_count"]
    search_fields = ["name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tag]:
        return super().get_queryset(request).annotate(device_count=Count("devices"))

    @admin.display(description="devices", ordering="device_count")
    def device_count(self, tag: Tag) -> int:
        return tag.device_count  # type: ignore[attr-defined,no-any-return]


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin[Device]):
    list_display = ["name", "state", "host_version", "tag_list", "last_seen", "desired_sequence"]
    list_filter = ["tags"]
    search_fields = ["name", "=id"]
    filter_horizontal = ["tags"]
    fields = [
        "name",
        "tags",
        "id",
        "state",
        "host_version",
        "last_seen",
        "enrolled_at",
        "enrolled_with",
        "plugins",
        "last_reading",
        "desired_sequence",
        "fleet_page",
    ]
    readonly_fields = [
        "id",
        "state",
        "host_version",
        "last_seen",
        "enrolled_at",
        "enrolled_with",
        "plugins",
        "last_reading",
        "desired_sequence",
        "fleet_page",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Device]:
        return super().get_queryset(request).prefetch_related("tags")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # devices enroll themselves with an enrollment token

    @admin.display(description="state")
    def state(self, device: Device) -> str:
        connectivity = device.connectivity()
        return format_html(
            '<span style="color:{}">{}</span>',
            "#15803d" if connectivity == Connectivity.ONLINE else "#b91c1c",
            connectivity.label,
        )

    @admin.display(description="tags")
    def tag_list(self, device: Device) -> str:
        return ", ".join(tag.name for tag in device.tags.all())

    @admin.display(description="plugins (last heartbeat)")
    def plugins(self, device: Device) -> str:
        if not device.reported_plugins:
            return "none"
        return format_html_join(
            "",
            "<div>{} {} — {}</div>",
            ((p.get("name"), p.get("version"), p.get("state")) for p in device.reported_plugins),
        )

    @admin.display(description="fleet page")
    def fleet_page(self, device: Device) -> str:
        url = reverse("devices:device", args=[device.pk])
        return format_html('<a href="{}">{}</a>', url, url)

    def save_model(
        self, request: HttpRequest, obj: Device, form: ModelForm[Device], change: bool
    ) -> None:
        update_device(
            device=obj,
            name=form.cleaned_data["name"],
            tags=form.cleaned_data["tags"],
        )

    def save_related(
        self, request: HttpRequest, form: ModelForm[Device], formsets: Any, change: bool
    ) -> None:
        """Tags were set by `update_device`, which also re-signs the desired state."""

    def delete_model(self, request: HttpRequest, obj: Device) -> None:
        delete_device(device=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        for device in queryset:
            delete_device(device=device)


@admin.register(EnrollmentToken)
class EnrollmentTokenAdmin(admin.ModelAdmin[EnrollmentToken]):
    list_display = ["label", "uses_left", "expires_at", "created_by", "created_at", "enrolled"]
    fields = ["label", "uses_left", "expires_at"]
    actions = ["revoke"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[EnrollmentToken]:
        return super().get_queryset(request).annotate(enrolled=Count("devices"))

    @admin.display(description="devices enrolled")
    def enrolled(self, token: EnrollmentToken) -> int:
        return token.enrolled  # type: ignore[attr-defined,no-any-return]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def save_model(
        self,
        request: HttpRequest,
        obj: EnrollmentToken,
        form: ModelForm[EnrollmentToken],
        change: bool,
    ) -> None:
        token, secret = create_enrollment_token(
            label=form.cleaned_data["label"],
            uses=form.cleaned_data["uses_left"],
            expires_at=form.cleaned_data["expires_at"],
            created_by=acting_user(request),
        )
        obj.pk, obj.token_hash, obj._state = token.pk, token.token_hash, token._state
        request._enrollment_secret = secret  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: EnrollmentToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        """Shows the secret on this one page; it is stored nowhere and cannot be shown again."""
        return TemplateResponse(
            request,
            "admin/devices/enrollmenttoken/created.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "token": obj,
                "secret": request._enrollment_secret,  # type: ignore[attr-defined]
                "control_plane_url": request.build_absolute_uri("/").rstrip("/"),
                "title": f"Enrollment token {obj.label}",
            },
        )

    @admin.action(description="Revoke (no further enrollments)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[EnrollmentToken]) -> None:
        for token in queryset:
            revoke_enrollment_token(token=token)
        self.message_user(request, f"Revoked {len(queryset)} token(s).", messages.SUCCESS)


@admin.register(DeviceEvent)
class DeviceEventAdmin(admin.ModelAdmin[DeviceEvent]):
    list_display = ["at", "device", "plugin", "version", "kind", "detail"]
    list_filter = ["kind"]
    search_fields = ["device__name", "plugin", "detail"]
    list_select_related = ["device"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
