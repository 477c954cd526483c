"""Serving a blob to a device, only if the desired state it was last signed names it.

A device token is no licence to every approved artifact: a component is served to the
devices whose desired state lists a release of it, a compiled artifact to the devices whose
desired state carries its compiled statement. Anything else is answered like an unknown
digest, so the answer does not tell whether the bytes exist.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase

from control_plane.api_support import bearer_token, error, unenrolled
from control_plane.blobs.choices import BlobKind
from control_plane.blobs.selectors import find
from control_plane.devices.selectors import device_for_token

ENTRIES = {BlobKind.COMPONENT: "releases", BlobKind.COMPILED: "compiled"}
"""Where a desired state names each kind: its release envelopes, its compiled envelopes."""


def download(request: HttpRequest, sha256: str, kind: BlobKind) -> HttpResponseBase:
    """The blob as ``application/zstd``, streamed a chunk at a time, for its device only.

    401 without a known device token; 404 when the device's desired state does not name
    ``sha256`` or the blob is not stored. ``X-Artifact-Size`` is the raw size, ``ETag`` the
    SHA-256 of the raw bytes.
    """
    token = bearer_token(request)
    device = device_for_token(token) if token is not None else None
    if device is None:
        return unenrolled(request) or error(401, "unknown device token")
    blob = find(sha256, kind) if sha256 in named_in(device.desired_statement, kind) else None
    if blob is None:
        return error(404, f"no {kind} artifact {sha256} for this device")
    response = StreamingHttpResponse(blob.chunks(), content_type="application/zstd")
    response["Content-Length"] = str(blob.size)
    response["ETag"] = f'"{blob.sha256}"'
    response["X-Artifact-Size"] = str(blob.raw_size)
    return response


def named_in(statement: Mapping[str, Any] | None, kind: BlobKind) -> frozenset[str]:
    """The artifact digests of ``kind`` a desired statement names (signed by us; a
    malformed entry names nothing)."""
    if statement is None:
        return frozenset()
    entries = statement.get(ENTRIES[kind])
    named = set()
    for envelope in entries if isinstance(entries, list) else []:
        try:
            inner = json.loads(envelope["statement"])
            named.add(str(inner["artifact"]["sha256"]))
        except (TypeError, KeyError, ValueError):
            continue
    return frozenset(named)
