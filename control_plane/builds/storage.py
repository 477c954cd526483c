"""Compiled artifacts on disk: zstd-compressed, named by the SHA-256 of the raw artifact.

Written whole or not at all (temp file, fsync, rename), so a worker killed mid-compile
leaves no partial artifact: only scratch files, swept before the next compile.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import BinaryIO

import zstandard
from django.conf import settings

from fleet_common.atomic import atomic_write_with

SCRATCH_PREFIX = ".work-"
SCRATCH_MAX_AGE_S = 3 * 3600.0
"""Scratch files older than this belong to a compile that died (the job timeout is 20 min)."""


def compiled_root() -> Path:
    return Path(settings.ARTIFACT_ROOT) / "compiled"


def compiled_path(sha256: str) -> Path:
    return compiled_root() / f"{sha256}.cwasm.zst"


def scratch_dir() -> Path:
    """Where a compile writes before the artifact is compressed into place."""
    root = compiled_root()
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for stale in root.glob(f"{SCRATCH_PREFIX}*"):
        try:
            if now - stale.stat().st_mtime > SCRATCH_MAX_AGE_S:
                stale.unlink()
        except OSError:
            continue
    return root


def store_compiled(raw: Path, sha256: str) -> int:
    """Compresses the raw artifact into place (streaming); returns the stored size."""
    target = compiled_path(sha256)
    if not target.exists():
        compressor = zstandard.ZstdCompressor(level=settings.ARTIFACT_ZSTD_LEVEL, threads=-1)

        def compress(out: BinaryIO) -> None:
            with raw.open("rb") as source:
                compressor.copy_stream(source, out, size=raw.stat().st_size)

        atomic_write_with(target, compress)
    return target.stat().st_size
