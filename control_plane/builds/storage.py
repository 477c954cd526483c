"""Compiled artifacts: stored as blobs, named by the SHA-256 of the raw artifact.

A compile writes into a local scratch directory (a worker killed mid-compile leaves only
scratch files there, swept before the next compile); the finished artifact goes to the
database every app server reads.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from control_plane.blobs.choices import BlobKind
from control_plane.blobs.services import put

SCRATCH_PREFIX = ".work-"
SCRATCH_MAX_AGE_S = 3 * 3600.0
"""Scratch files older than this belong to a compile that died (the job timeout is 20 min)."""


def scratch_dir() -> Path:
    """Where a compile writes before the artifact is stored: local, this worker's only."""
    root = Path(tempfile.gettempdir()) / "pi-fleet-compiles"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = time.time()
    for stale in root.glob(f"{SCRATCH_PREFIX}*"):
        try:
            if now - stale.stat().st_mtime > SCRATCH_MAX_AGE_S:
                stale.unlink()
        except OSError:
            continue
    return root


def store_compiled(raw: Path, sha256: str) -> int:
    """Stores the raw artifact compressed (once for the same bytes); returns the stored size."""
    return put(sha256=sha256, kind=BlobKind.COMPILED, source=raw).size
