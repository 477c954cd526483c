"""A read-only view of the outbox, so an operator sees a broker outage: the backlog in the
list's header, each device's pending sequence, attempts and last error."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from control_plane.notices.models import PENDING, DesiredNotice
from control_plane.notices.selectors import backlog


class PendingFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("pending", "Pending"), ("failing", "Failing"), ("published", "Published")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "pending":
            return queryset.filter(PENDING)
        if self.value() == "failing":
            return queryset.filter(PENDING, attempts__gt=0)
        if self.value() == "published":
            return queryset.exclude(PENDING)
        return queryset


@admin.register(DesiredNotice)
class DesiredNoticeAdmin(admin.ModelAdmin[DesiredNotice]):
    list_display = (
        "device",
        "sequence",
        "published_sequence",
        "is_pending",
        "attempts",
        "last_error",
        "updated_at",
        "published_at",
    )
    list_filter = (PendingFilter,)
    list_select_related = ("device",)
    search_fields = ("device__name", "=device__id")
    show_full_result_count = False

    @admin.display(boolean=True, description="pending")
    def is_pending(self, notice: DesiredNotice) -> bool:
        return notice.pending

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        figures = backlog()
        if figures.pending:
            oldest = (
                f", the oldest since {figures.oldest:%Y-%m-%d %H:%M:%S}" if figures.oldest else ""
            )
            self.message_user(
                request,
                f"{figures.pending} notices pending ({figures.failing} after failed attempts, "
                f"at most {figures.most_attempts}){oldest}. Devices still converge by heartbeat.",
                level="WARNING" if figures.failing else "INFO",
            )
        if figures.retired:
            self.message_user(
                request,
                f"{figures.retired} deleted devices' retained notices are still on the broker; "
                "the publisher clears them.",
                level="INFO",
            )
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
