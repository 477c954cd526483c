"""The plugins' API: approved components, for enrolled devices."""

from __future__ import annotations

from django.http import HttpRequest
from django.http.response import HttpResponseBase

from control_plane.api_support import allow, stream, unenrolled
from control_plane.plugins.artifacts import artifact_path
from control_plane.plugins.choices import VersionStatus
from control_plane.plugins.models import PluginVersion


@allow("GET")
def artifact(request: HttpRequest, sha256: str) -> HttpResponseBase:
    """``GET /api/v1/artifacts/<sha256>``: the approved component, zstd-compressed."""
    if (refused := unenrolled(request)) is not None:
        return refused
    size = (
        PluginVersion.objects.filter(sha256=sha256, status=VersionStatus.APPROVED)
        .values_list("size", flat=True)
        .first()
    )
    return stream(size, artifact_path(sha256), f"approved artifact {sha256}")
