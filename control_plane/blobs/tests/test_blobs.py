"""Storing, reading and removing blobs: whole or not at all, once per bytes, no lost races."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
import zstandard
from django.contrib.auth.models import Group
from django.db import DatabaseError, connection, transaction

from control_plane.blobs import services
from control_plane.blobs.choices import BlobKind
from control_plane.blobs.exceptions import BlobMismatch
from control_plane.blobs.models import Blob, BlobChunk
from control_plane.blobs.selectors import copy_raw, exists, find
from control_plane.blobs.services import CHUNK_BYTES, delete_unreferenced, put
from control_plane.signing import sign_desired_state, sign_release

RAW = os.urandom(3 * CHUNK_BYTES + 1234)  # incompressible: several chunks once compressed
SHA = hashlib.sha256(RAW).hexdigest()


concurrent = pytest.mark.django_db(transaction=True)
"""Writers on their own connections. SQLite's in-memory test database (shared cache) answers
a second writer "table is locked" at once instead of waiting: these run on PostgreSQL, the
engine several app servers share (``scripts/with-postgres.sh``)."""


@pytest.fixture
def postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (scripts/with-postgres.sh)")


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Runs ``work`` on its own database connection; its result (or error) lands in the list."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(work())
        except Exception as exc:  # handed to the test, which asserts on it
            out.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


@pytest.mark.django_db
def test_a_stored_blob_reads_back_chunk_by_chunk_and_decompresses_to_its_bytes():
    blob = put(sha256=SHA, kind=BlobKind.COMPONENT, source=RAW)

    stored = find(SHA, BlobKind.COMPONENT)
    assert stored is not None and (stored.size, stored.raw_size) == (blob.size, len(RAW))
    chunks = list(stored.chunks())
    assert len(chunks) == stored.chunk_count > 3 and all(len(c) <= CHUNK_BYTES for c in chunks)
    assert zstandard.ZstdDecompressor().decompress(b"".join(chunks)) == RAW
    out = io.BytesIO()
    copy_raw(SHA, BlobKind.COMPONENT, out)
    assert out.getvalue() == RAW


@pytest.mark.django_db
def test_a_file_is_stored_from_disk(tmp_path):
    path = tmp_path / "artifact.cwasm"
    path.write_bytes(RAW)

    put(sha256=SHA, kind=BlobKind.COMPILED, source=path)

    assert exists(SHA, BlobKind.COMPILED) and not exists(SHA, BlobKind.COMPONENT)


@pytest.mark.django_db
def test_storing_the_same_bytes_again_compresses_nothing_and_keeps_one_blob(monkeypatch):
    first = put(sha256=SHA, kind=BlobKind.COMPONENT, source=RAW)
    monkeypatch.setattr(services, "_pack", lambda *a: pytest.fail("compressed again"))

    again = put(sha256=SHA, kind=BlobKind.COMPONENT, source=RAW)

    assert again.pk == first.pk and Blob.objects.count() == 1
    assert BlobChunk.objects.count() == first.chunk_count


@pytest.mark.django_db
def test_bytes_that_do_not_hash_to_the_name_are_refused():
    with pytest.raises(BlobMismatch, match=f"offered as blob {'0' * 12} hash to {SHA}"):
        put(sha256="0" * 64, kind=BlobKind.COMPONENT, source=RAW)

    assert not Blob.objects.exists()


@pytest.mark.django_db
def test_the_same_bytes_as_another_kind_are_refused():
    put(sha256=SHA, kind=BlobKind.COMPONENT, source=RAW)

    with pytest.raises(BlobMismatch, match=r"stored as a component .* offered as a compiled"):
        put(sha256=SHA, kind=BlobKind.COMPILED, source=RAW)


@pytest.mark.django_db
def test_a_failed_write_leaves_no_partial_blob(monkeypatch):
    def fail(*args: object, **kwargs: object) -> None:
        raise DatabaseError("disk full")

    monkeypatch.setattr(BlobChunk, "save", fail)

    with pytest.raises(DatabaseError):
        put(sha256=SHA, kind=BlobKind.COMPONENT, source=RAW)

    assert not Blob.objects.exists() and not BlobChunk.objects.exists()


@pytest.mark.django_db
def test_an_unreferenced_blob_is_removed_with_its_chunks_and_a_referenced_one_kept():
    put(sha256=SHA, kind=BlobKind.COMPONENT, source=RAW)

    assert delete_unreferenced(SHA, referenced=lambda: True) is False
    assert exists(SHA, BlobKind.COMPONENT)
    assert delete_unreferenced(SHA, referenced=lambda: False) is True
    assert not Blob.objects.exists() and not BlobChunk.objects.exists()
    assert delete_unreferenced(SHA, referenced=lambda: False) is False


@pytest.mark.django_db
def test_a_20_mb_download_streams_with_memory_bounded_by_a_few_chunks(client, enroll):
    raw = os.urandom(20 * 1024 * 1024)
    sha256 = hashlib.sha256(raw).hexdigest()
    put(sha256=sha256, kind=BlobKind.COMPONENT, source=raw)
    del raw
    device, token = enroll()
    release = sign_release({"name": "big", "version": "1.0.0"}, 1, sha256, 20 * 1024 * 1024)
    device.desired_envelope = json.dumps(sign_desired_state(str(device.id), 1, [release], []))
    device.save(update_fields=["desired_envelope"])

    tracemalloc.start()
    try:
        answer = client.get(f"/api/v1/artifacts/{sha256}", HTTP_AUTHORIZATION=f"Bearer {token}")
        digest, chunks, size = hashlib.sha256(), 0, 0
        for chunk in answer.streaming_content:
            chunks += 1
            size += len(chunk)
            digest.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert answer.status_code == 200 and size == int(answer["Content-Length"]) > 20 * 1024 * 1024
    assert chunks == find(sha256, BlobKind.COMPONENT).chunk_count >= 20  # type: ignore[union-attr]
    assert peak < 4 * CHUNK_BYTES, f"peak {peak / CHUNK_BYTES:.1f} MiB traced while streaming"


@concurrent
def test_two_concurrent_stores_of_the_same_bytes_make_one_complete_blob(postgresql, monkeypatch):
    packed = threading.Barrier(2, timeout=30)
    pack = services._pack

    def pack_then_wait(*args: Any) -> Any:
        result = pack(*args)
        packed.wait()  # both compressed, neither stored: both go for the insert
        return result

    monkeypatch.setattr(services, "_pack", pack_then_wait)

    threads = [in_thread(lambda: put(sha256=SHA, kind=BlobKind.COMPONENT, source=RAW))]
    threads.append(in_thread(lambda: put(sha256=SHA, kind=BlobKind.COMPONENT, source=RAW)))
    for thread, _ in threads:
        thread.join(60)

    results = [out[0] for _, out in threads]
    assert all(isinstance(r, Blob) and r.sha256 == SHA for r in results), results
    blob = Blob.objects.get()
    assert BlobChunk.objects.filter(blob=blob).count() == blob.chunk_count
    stored = find(SHA, BlobKind.COMPONENT)
    assert stored is not None
    assert zstandard.ZstdDecompressor().decompress(b"".join(stored.chunks())) == RAW


@concurrent
def test_a_removal_waits_for_a_store_in_progress_and_then_sees_its_reference(postgresql):
    put(sha256=SHA, kind=BlobKind.COMPONENT, source=RAW)
    stored, release = threading.Event(), threading.Event()

    def upload() -> None:
        with transaction.atomic():
            put(sha256=SHA, kind=BlobKind.COMPONENT, source=RAW)  # finds it, locks it
            Group.objects.create(name="reference")
            stored.set()
            release.wait(30)

    uploader, _ = in_thread(upload)
    assert stored.wait(30)
    remover, removed = in_thread(
        lambda: delete_unreferenced(
            SHA, referenced=lambda: Group.objects.filter(name="reference").exists()
        )
    )
    remover.join(0.5)  # it waits on the blob's row lock
    release.set()
    uploader.join(30)
    remover.join(30)

    assert removed == [False] and exists(SHA, BlobKind.COMPONENT)


@concurrent
def test_a_store_that_waited_for_a_removal_stores_the_bytes_again(postgresql):
    put(sha256=SHA, kind=BlobKind.COMPONENT, source=RAW)
    removed, release = threading.Event(), threading.Event()

    def remove() -> None:
        with transaction.atomic():
            delete_unreferenced(SHA, referenced=lambda: False)
            removed.set()
            release.wait(30)

    remover, _ = in_thread(remove)
    assert removed.wait(30)
    uploader, blobs = in_thread(lambda: put(sha256=SHA, kind=BlobKind.COMPONENT, source=RAW))
    uploader.join(0.5)
    release.set()
    remover.join(30)
    uploader.join(30)

    assert isinstance(blobs[0], Blob) and exists(SHA, BlobKind.COMPONENT)
    assert BlobChunk.objects.count() == blobs[0].chunk_count
