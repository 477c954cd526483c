"""Artifact bytes in the database, so every app server reads and writes the same ones."""

from __future__ import annotations

from django.db import models

from control_plane.blobs.choices import BlobKind


class Blob(models.Model):
    """zstd-compressed artifact bytes, named by the SHA-256 of the raw (uncompressed) bytes.

    The bytes live in `BlobChunk` rows, written in the transaction that creates this row: a
    blob that exists is complete. The same raw bytes are one blob, however often stored.
    """

    sha256 = models.CharField(max_length=64, primary_key=True)
    kind = models.CharField(max_length=16, choices=BlobKind.choices)
    size = models.PositiveBigIntegerField(help_text="Stored (compressed) bytes.")
    raw_size = models.PositiveBigIntegerField(help_text="Bytes once decompressed.")
    chunk_count = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.sha256[:12]}"


class BlobChunk(models.Model):
    """One slice (about 1 MiB) of a blob's compressed bytes, so no query moves the whole blob."""

    blob = models.ForeignKey(Blob, on_delete=models.CASCADE, related_name="chunks", db_index=False)
    index = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        ordering = ["blob", "index"]
        constraints = [
            models.UniqueConstraint(fields=["blob", "index"], name="blobs_chunk_unique_index")
        ]

    def __str__(self) -> str:
        return f"{self.blob_id[:12]} #{self.index}"
