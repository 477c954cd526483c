"""Every write to blobs goes through here: store bytes once, remove them once unreferenced.

Concurrency is the database's, so any number of app servers can share it. The primary key
makes storing the same bytes twice harmless (the second store finds the first); a row lock
makes a removal either wait for a store of the same bytes (and then see its reference) or
finish first (and the store writes the bytes again). No file locks.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import zstandard
from django.conf import settings
from django.db import IntegrityError, transaction

from control_plane.blobs.choices import BlobKind
from control_plane.blobs.exceptions import BlobMismatch
from control_plane.blobs.models import Blob, BlobChunk

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
"""Bytes per chunk row: a download or an upload moves one at a time."""
SPOOL_BYTES = 8 * CHUNK_BYTES
"""Compressed bytes kept in memory before the packing spills into a temporary file."""

Source = bytes | Path
"""Raw bytes, in memory (an upload) or in a file (a compile's output)."""


def put(*, sha256: str, kind: BlobKind, source: Source) -> Blob:
    """Stores ``source`` (raw bytes whose SHA-256 is ``sha256``) zstd-compressed; returns it.

    Bytes stored already are not compressed again. Called inside a transaction, the blob's
    row stays locked until that transaction ends, so the reference the caller saves in it
    is seen by any `delete_unreferenced` of the same bytes. New bytes are compressed before
    the blob's own transaction starts (at ``ARTIFACT_ZSTD_LEVEL``), then written in chunks
    with the blob's row: a blob is visible only complete. Raises `BlobMismatch` if the bytes
    do not hash to ``sha256``, or the blob stored under it has another size or kind.
    """
    raw_size = _size(source)
    with _packing(sha256, source) as packed:
        with transaction.atomic():
            blob = Blob.objects.select_for_update().filter(pk=sha256).first()
            if blob is None:
                blob = _insert(sha256, kind, packed or _pack(sha256, source))
        if blob.kind != kind or blob.raw_size != raw_size:
            raise BlobMismatch(
                f"blob {sha256[:12]} is stored as a {blob.kind} of {blob.raw_size} bytes; "
                f"offered as a {kind} of {raw_size} bytes"
            )
    return blob


def delete_unreferenced(sha256: str, *, referenced: Callable[[], bool]) -> bool:
    """Removes the blob unless ``referenced()`` says something still needs it; True if gone.

    ``referenced`` runs with the blob's row locked: a concurrent `put` of the same bytes
    either committed its reference before (and is seen) or waits, then stores them again.
    """
    with transaction.atomic():
        if not Blob.objects.select_for_update().filter(pk=sha256).exists():
            return False
        if referenced():
            return False
        BlobChunk.objects.filter(blob_id=sha256).delete()
        Blob.objects.filter(pk=sha256).delete()
    log.info("removed blob %s", sha256[:12])
    return True


@dataclass
class _Packed:
    """Compressed bytes waiting in a temporary file (in memory while small)."""

    file: IO[bytes]
    size: int
    raw_size: int

    def chunks(self) -> Iterator[bytes]:
        self.file.seek(0)
        while chunk := self.file.read(CHUNK_BYTES):
            yield chunk


@contextmanager
def _packing(sha256: str, source: Source) -> Iterator[_Packed | None]:
    """The compressed bytes, unless already stored (then None): done outside any lock."""
    packed = None if Blob.objects.filter(pk=sha256).exists() else _pack(sha256, source)
    try:
        yield packed
    finally:
        if packed is not None:
            packed.file.close()


def _pack(sha256: str, source: Source) -> _Packed:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (closed by _packing)
    digest = hashlib.sha256()
    raw_size = 0
    compressor = zstandard.ZstdCompressor(level=settings.ARTIFACT_ZSTD_LEVEL, threads=-1)
    with compressor.stream_writer(spool, size=_size(source), closefd=False) as writer:
        for piece in _pieces(source):
            digest.update(piece)
            writer.write(piece)
            raw_size += len(piece)
    if digest.hexdigest() != sha256:
        spool.close()
        raise BlobMismatch(f"the bytes offered as blob {sha256[:12]} hash to {digest.hexdigest()}")
    return _Packed(spool, spool.tell(), raw_size)


def _size(source: Source) -> int:
    return len(source) if isinstance(source, bytes) else source.stat().st_size


def _pieces(source: Source) -> Iterator[bytes]:
    if isinstance(source, bytes):
        view = memoryview(source)
        for start in range(0, len(view), CHUNK_BYTES):
            yield bytes(view[start : start + CHUNK_BYTES])
        return
    with source.open("rb") as handle:
        while piece := handle.read(CHUNK_BYTES):
            yield piece


def _insert(sha256: str, kind: BlobKind, packed: _Packed) -> Blob:
    """Writes the row and its chunks in one savepoint; if another server stored the same
    bytes meanwhile, the primary key refuses the row and theirs is returned."""
    chunk_count = -(-packed.size // CHUNK_BYTES)
    try:
        with transaction.atomic():
            blob = Blob.objects.create(
                sha256=sha256,
                kind=kind,
                size=packed.size,
                raw_size=packed.raw_size,
                chunk_count=chunk_count,
            )
            for index, data in enumerate(packed.chunks()):
                BlobChunk.objects.create(blob=blob, index=index, data=data)
    except IntegrityError:
        log.info("blob %s was stored meanwhile by another writer", sha256[:12])
        return Blob.objects.select_for_update().get(pk=sha256)
    log.info("stored %s blob %s: %d bytes, %d chunks", kind, sha256[:12], packed.size, chunk_count)
    return blob
