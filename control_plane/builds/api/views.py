"""The builds' API: signed compiled artifacts, for enrolled devices."""

from __future__ import annotations

from django.http import HttpRequest
from django.http.response import HttpResponseBase

from control_plane.api_support import allow, stream, unenrolled
from control_plane.builds.choices import ArtifactState
from control_plane.builds.models import CompiledArtifact
from control_plane.builds.storage import compiled_path
from control_plane.plugins.choices import VersionStatus


@allow("GET")
def compiled(request: HttpRequest, sha256: str) -> HttpResponseBase:
    """``GET /api/v1/compiled/<sha256>``: a signed compiled artifact, zstd-compressed."""
    if (refused := unenrolled(request)) is not None:
        return refused
    size = (
        CompiledArtifact.objects.filter(
            sha256=sha256,
            state=ArtifactState.READY,
            envelope__isnull=False,
            version__status=VersionStatus.APPROVED,
        )
        .values_list("size", flat=True)
        .first()
    )
    return stream(size, compiled_path(sha256), f"signed compiled artifact {sha256}")
