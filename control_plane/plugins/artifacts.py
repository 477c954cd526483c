"""Components on disk, zstd-compressed and named by the SHA-256 of their raw bytes.

A file appears whole or not at all (temp file, fsync, rename). Writers hold a lock file, so
removing an artifact nobody references cannot race an upload of the same bytes.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import zstandard
from django.conf import settings


def artifact_root() -> Path:
    return Path(settings.ARTIFACT_ROOT)


def artifact_path(sha256: str) -> Path:
    return artifact_root() / f"{sha256}.wasm.zst"


def compress(data: bytes) -> bytes:
    """zstd at ``settings.ARTIFACT_ZSTD_LEVEL``; devices stream-decompress any level."""
    return zstandard.ZstdCompressor(level=settings.ARTIFACT_ZSTD_LEVEL).compress(data)


@contextmanager
def artifact_lock() -> Iterator[None]:
    """Serialises artifact writes and removals across processes on this host."""
    root = artifact_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def store_artifact(sha256: str, compressed: bytes) -> None:
    """Writes the artifact whole: temp file, fsync, rename, fsync of the directory."""
    path = artifact_path(sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(compressed)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def remove_artifact(sha256: str) -> None:
    artifact_path(sha256).unlink(missing_ok=True)
