"""The builds' API: compiled artifacts, for the devices whose desired state carries them."""

from __future__ import annotations

from django.http import HttpRequest
from django.http.response import HttpResponseBase

from control_plane.api_support import allow
from control_plane.blobs.choices import BlobKind
from control_plane.blobs.downloads import download


@allow("GET")
def compiled(request: HttpRequest, sha256: str) -> HttpResponseBase:
    """``GET /api/v1/compiled/<sha256>``: a compiled artifact the device's desired state
    carries a signed statement for, zstd-compressed."""
    return download(request, sha256, BlobKind.COMPILED)
