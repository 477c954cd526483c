"""Compiled artifact downloads: only for a device whose desired state carries the artifact."""

from __future__ import annotations

import json

import pytest
import zstandard

from control_plane.builds.choices import ArtifactState
from control_plane.builds.models import CompiledArtifact
from control_plane.signing import sign_desired_state

pytestmark = pytest.mark.django_db


def download(client, sha256: str, token: str):
    return client.get(f"/api/v1/compiled/{sha256}", HTTP_AUTHORIZATION=f"Bearer {token}")


def desire(device, releases: list[dict[str, str]], compiled: list[dict[str, str]]) -> None:
    device.desired_sequence += 1
    envelope = sign_desired_state(str(device.id), device.desired_sequence, releases, compiled)
    device.desired_envelope = json.dumps(envelope)
    device.save(update_fields=["desired_sequence", "desired_envelope"])


@pytest.fixture
def signed(approved) -> CompiledArtifact:
    """The native class's signed artifact of an approved hello."""
    artifact = CompiledArtifact.objects.get(version=approved(), state=ArtifactState.READY)
    assert artifact.envelope is not None
    return artifact


def test_a_carried_artifact_downloads_as_zstd_of_the_machine_code(client, enroll, signed):
    device, token = enroll()
    desire(device, [signed.version.release_envelope], [signed.envelope])

    answer = download(client, signed.sha256, token)

    assert answer.status_code == 200
    assert answer["ETag"] == f'"{signed.sha256}"'
    assert answer["X-Artifact-Size"] == str(signed.size)
    assert int(answer["Content-Length"]) == signed.compressed_size
    raw = (
        zstandard.ZstdDecompressor().decompressobj().decompress(b"".join(answer.streaming_content))
    )
    assert len(raw) == signed.size


def test_an_artifact_of_a_release_desired_without_it_is_refused(client, enroll, signed):
    device, token = enroll()
    desire(device, [signed.version.release_envelope], [])  # another engine: no artifact

    answer = download(client, signed.sha256, token)

    assert (answer.status_code, answer.json()) == (
        404,
        {"error": f"no compiled artifact {signed.sha256} for this device"},
    )


def test_another_devices_artifact_is_refused(client, enroll, signed):
    owner, _ = enroll("pi-1")
    _, other_token = enroll("pi-2")
    desire(owner, [signed.version.release_envelope], [signed.envelope])

    assert download(client, signed.sha256, other_token).status_code == 404


def test_a_component_digest_is_no_compiled_artifact(client, enroll, signed):
    device, token = enroll()
    desire(device, [signed.version.release_envelope], [signed.envelope])

    assert download(client, signed.version.sha256, token).status_code == 404
