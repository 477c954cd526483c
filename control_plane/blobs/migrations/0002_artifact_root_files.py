"""Moves the artifacts of a control plane from before blobs into the database.

Components (``<sha256>.wasm.zst``) and compiled artifacts (``compiled/<sha256>.cwasm.zst``)
under ``ARTIFACT_ROOT`` are copied as they are (already compressed) into blobs, each checked
against its digest first, so an upgraded control plane keeps serving what it served. Run
again, it skips what is stored. A file that is missing or damaged is named in the log and
left out; approving a version without its bytes then says so. The files are left in place.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import zstandard
from django.conf import settings
from django.db import migrations, transaction

log = logging.getLogger("control_plane.blobs.migrations")

CHUNK_BYTES = 1 << 20


def _wanted(apps: Any, root: Path) -> dict[str, tuple[str, int | None, Path]]:
    """sha256 → (kind, raw size, file) of every artifact a row still references."""
    version_model = apps.get_model("plugins", "PluginVersion")
    artifact_model = apps.get_model("builds", "CompiledArtifact")
    wanted: dict[str, tuple[str, int | None, Path]] = {}
    for sha256, size in version_model.objects.exclude(status="rejected").values_list(
        "sha256", "size"
    ):
        wanted[sha256] = ("component", size, root / f"{sha256}.wasm.zst")
    for sha256, size in (
        artifact_model.objects.filter(state="ready")
        .exclude(sha256="")
        .values_list("sha256", "size")
    ):
        wanted[sha256] = ("compiled", size, root / "compiled" / f"{sha256}.cwasm.zst")
    return wanted


def _read(path: Path) -> tuple[str, int]:
    """The SHA-256 and size of the raw bytes a compressed file holds, read a chunk at a time."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as packed:
        reader = zstandard.ZstdDecompressor().stream_reader(packed)
        while piece := reader.read(CHUNK_BYTES):
            digest.update(piece)
            size += len(piece)
    return digest.hexdigest(), size


def forwards(apps: Any, schema_editor: Any) -> None:
    blob_model = apps.get_model("blobs", "Blob")
    chunk_model = apps.get_model("blobs", "BlobChunk")
    root = Path(settings.ARTIFACT_ROOT)
    wanted = _wanted(apps, root)
    stored = set(blob_model.objects.filter(pk__in=list(wanted)).values_list("pk", flat=True))
    moved = 0
    for sha256, (kind, raw_size, path) in sorted(wanted.items()):
        if sha256 in stored:
            continue
        if not path.is_file():
            log.warning("%s artifact %s: %s is missing; not moved", kind, sha256, path)
            continue
        try:
            digest, measured = _read(path)
        except (OSError, zstandard.ZstdError) as exc:
            log.warning("%s artifact %s: %s unreadable (%s); not moved", kind, sha256, path, exc)
            continue
        if digest != sha256 or measured != (raw_size if raw_size is not None else measured):
            log.warning(
                "%s artifact %s: %s holds other bytes (%d bytes, sha256 %s); not moved",
                *(kind, sha256, path, measured, digest),
            )
            continue
        size = path.stat().st_size
        with transaction.atomic(), path.open("rb") as packed:
            blob = blob_model.objects.create(
                sha256=sha256,
                kind=kind,
                size=size,
                raw_size=measured,
                chunk_count=-(-size // CHUNK_BYTES),
            )
            index = 0
            while data := packed.read(CHUNK_BYTES):
                chunk_model.objects.create(blob=blob, index=index, data=data)
                index += 1
        moved += 1
    if moved:
        log.info("moved %d artifacts from %s into the database", moved, root)


class Migration(migrations.Migration):
    atomic = False  # one transaction per artifact: a large store is not one huge transaction

    dependencies = [
        ("blobs", "0001_initial"),
        ("plugins", "0004_releases_of_approved_versions"),
        ("builds", "0002_default_classes"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=True)]
