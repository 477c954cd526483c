"""The data migration that moves the files of a control plane from before blobs into them."""

from __future__ import annotations

import importlib
import logging

import pytest
from django.apps import apps

from control_plane.blobs.choices import BlobKind
from control_plane.blobs.models import Blob
from control_plane.blobs.selectors import find
from control_plane.builds.models import CompiledArtifact

pytestmark = pytest.mark.django_db

migration = importlib.import_module("control_plane.blobs.migrations.0002_artifact_root_files")


@pytest.fixture
def old_layout(approved, settings, tmp_path):
    """An approved version and its compiled artifact as files under ARTIFACT_ROOT, no blobs."""
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    version = approved()
    artifact = CompiledArtifact.objects.get(version=version)
    files = {
        version.sha256: settings.ARTIFACT_ROOT / f"{version.sha256}.wasm.zst",
        artifact.sha256: settings.ARTIFACT_ROOT / "compiled" / f"{artifact.sha256}.cwasm.zst",
    }
    originals = {}
    for sha256, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = Blob.objects.get(pk=sha256)
        stored = find(sha256, BlobKind(blob.kind))
        assert stored is not None
        originals[sha256] = b"".join(stored.chunks())
        path.write_bytes(originals[sha256])
    Blob.objects.all().delete()
    return version, artifact, files, originals


def test_files_are_moved_into_blobs_byte_for_byte(old_layout):
    version, artifact, _, originals = old_layout

    migration.forwards(apps, None)

    for sha256, kind in (
        (version.sha256, BlobKind.COMPONENT),
        (artifact.sha256, BlobKind.COMPILED),
    ):
        stored = find(sha256, kind)
        assert stored is not None and b"".join(stored.chunks()) == originals[sha256]
    assert find(version.sha256, BlobKind.COMPONENT).raw_size == version.size  # type: ignore[union-attr]


def test_running_it_again_changes_nothing(old_layout, caplog):
    migration.forwards(apps, None)
    before = list(Blob.objects.order_by("pk").values_list("pk", "created_at"))
    caplog.clear()

    with caplog.at_level(logging.INFO, logger="control_plane.blobs.migrations"):
        migration.forwards(apps, None)

    assert list(Blob.objects.order_by("pk").values_list("pk", "created_at")) == before
    assert caplog.records == []


def test_a_missing_file_is_named_in_the_log_and_the_rest_moved(old_layout, caplog):
    version, artifact, files, _ = old_layout
    files[artifact.sha256].unlink()

    with caplog.at_level(logging.WARNING, logger="control_plane.blobs.migrations"):
        migration.forwards(apps, None)

    assert [r.getMessage() for r in caplog.records] == [
        f"compiled artifact {artifact.sha256}: {files[artifact.sha256]} is missing; not moved"
    ]
    assert list(Blob.objects.values_list("pk", flat=True)) == [version.sha256]


def test_a_damaged_file_is_named_in_the_log_and_not_moved(old_layout, caplog):
    version, _, files, originals = old_layout
    files[version.sha256].write_bytes(originals[version.sha256][:100])

    with caplog.at_level(logging.WARNING, logger="control_plane.blobs.migrations"):
        migration.forwards(apps, None)

    (record,) = caplog.records
    assert f"component artifact {version.sha256}: {files[version.sha256]} holds other bytes" in (
        record.getMessage()
    )
    assert not Blob.objects.filter(pk=version.sha256).exists()
