"""Blobs in the admin, read-only: how much the database holds, and of what."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from control_plane.blobs.models import Blob

FIELDS = ("sha256", "kind", "size", "raw_size", "chunk_count", "created_at")


@admin.register(Blob)
class BlobAdmin(admin.ModelAdmin[Blob]):
    """Listed for operators; uploads and compiles write blobs, rejections remove them."""

    list_display = FIELDS
    list_filter = ["kind"]
    search_fields = ["sha256"]
    readonly_fields = FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Blob | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Blob | None = None) -> bool:
        return False
