"""Errors the blobs app raises on purpose; each message names the blob."""

from __future__ import annotations

from control_plane.errors import ControlPlaneError


class BlobError(ControlPlaneError):
    """Root of the blobs app's errors."""


class BlobMismatch(BlobError):
    """Bytes offered under a SHA-256 are not the bytes stored (or hashed) under it."""


class BlobMissing(BlobError):
    """A blob (or one of its chunks) is gone: removed while it was being read."""
