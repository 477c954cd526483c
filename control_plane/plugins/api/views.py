"""The plugins' API: components, for the devices whose desired state names them."""

from __future__ import annotations

from django.http import HttpRequest
from django.http.response import HttpResponseBase

from control_plane.api_support import allow
from control_plane.blobs.choices import BlobKind
from control_plane.blobs.downloads import download


@allow("GET")
def artifact(request: HttpRequest, sha256: str) -> HttpResponseBase:
    """``GET /api/v1/artifacts/<sha256>``: a component the device's desired state names,
    zstd-compressed."""
    return download(request, sha256, BlobKind.COMPONENT)
