"""Reading blobs: a chunk per query, so neither a download nor a compile holds a whole blob."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import zstandard

from control_plane.blobs.choices import BlobKind
from control_plane.blobs.exceptions import BlobMissing
from control_plane.blobs.models import Blob, BlobChunk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredBlob:
    """A complete blob's description; `chunks` reads its compressed bytes lazily."""

    sha256: str
    kind: BlobKind
    size: int
    raw_size: int
    chunk_count: int

    def chunks(self) -> Iterator[bytes]:
        """The compressed bytes, one chunk (about 1 MiB) per query.

        Raises `BlobMissing` if the blob is removed while being read (a reader that has
        started streaming can only stop short; devices check the signed size and hash).
        """
        for index in range(self.chunk_count):
            data = (
                BlobChunk.objects.filter(blob_id=self.sha256, index=index)
                .values_list("data", flat=True)
                .first()
            )
            if data is None:
                log.error("blob %s lost chunk %d while being read", self.sha256[:12], index)
                raise BlobMissing(f"blob {self.sha256[:12]} was removed while being read")
            yield bytes(data)


def find(sha256: str, kind: BlobKind) -> StoredBlob | None:
    """The stored blob of this kind, or None."""
    row = (
        Blob.objects.filter(pk=sha256, kind=kind)
        .values_list("size", "raw_size", "chunk_count")
        .first()
    )
    if row is None:
        return None
    size, raw_size, chunk_count = row
    return StoredBlob(sha256, kind, size, raw_size, chunk_count)


def exists(sha256: str, kind: BlobKind) -> bool:
    return Blob.objects.filter(pk=sha256, kind=kind).exists()


def copy_raw(sha256: str, kind: BlobKind, out: BinaryIO) -> None:
    """Decompresses the blob into ``out`` as it is read, a chunk at a time.

    Raises `BlobMissing` if there is no such blob.
    """
    blob = find(sha256, kind)
    if blob is None:
        raise BlobMissing(f"no {kind} blob {sha256[:12]}")
    with zstandard.ZstdDecompressor().stream_writer(out, closefd=False) as writer:
        for chunk in blob.chunks():
            writer.write(chunk)
