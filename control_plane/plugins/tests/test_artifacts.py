"""Component downloads: a device gets only what its current signed desired state names."""

from __future__ import annotations

import json

import pytest
import zstandard

from control_plane.plugins.services import approve_plugin_version, upload_plugin_version
from control_plane.signing import sign_desired_state

pytestmark = pytest.mark.django_db


def download(client, sha256: str, token: str | None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.get(f"/api/v1/artifacts/{sha256}", **headers)


def desire(device, *versions) -> None:
    """Gives ``device`` a signed desired state naming the releases of ``versions``."""
    releases = [version.release_envelope for version in versions]
    device.desired_sequence += 1
    envelope = sign_desired_state(str(device.id), device.desired_sequence, releases, [])
    device.desired_envelope = json.dumps(envelope)
    device.save(update_fields=["desired_sequence", "desired_envelope"])


def refused(answer, sha256: str) -> bool:
    """A 404 that reads the same whether or not the bytes exist."""
    return (answer.status_code, answer.json()) == (
        404,
        {"error": f"no component artifact {sha256} for this device"},
    )


def test_a_desired_component_downloads_as_zstd_of_the_component(client, enroll, approved, hello):
    device, token = enroll()
    version = approved()
    desire(device, version)

    answer = download(client, version.sha256, token)

    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/zstd"
    assert answer["X-Artifact-Size"] == str(len(hello.component))
    assert answer["ETag"] == f'"{version.sha256}"'
    assert int(answer["Content-Length"]) == version.compressed_size
    body = b"".join(answer.streaming_content)
    assert zstandard.ZstdDecompressor().decompress(body) == hello.component


def test_another_devices_component_is_refused(client, enroll, approved):
    owner, _ = enroll("pi-1")
    _, other_token = enroll("pi-2")
    version = approved()
    desire(owner, version)

    assert refused(download(client, version.sha256, other_token), version.sha256)


def test_a_component_no_longer_desired_is_refused_and_the_new_one_served(
    client, enroll, approved, lab, admin_user
):
    device, token = enroll()
    old = approved()
    desire(device, old)
    new = approve_plugin_version(
        version=upload_plugin_version(component=lab.component, manifest_text=lab.manifest),
        approved_by=admin_user,
    )
    desire(device, new)

    assert refused(download(client, old.sha256, token), old.sha256)
    assert download(client, new.sha256, token).status_code == 200


def test_a_download_without_a_token_is_401(client, approved):
    answer = download(client, approved().sha256, None)

    assert answer.status_code == 401


def test_a_download_with_an_unknown_token_is_401(client, approved):
    answer = download(client, approved().sha256, "stolen?")

    assert answer.status_code == 401
    assert "unknown device token" in answer.json()["error"]


def test_an_unknown_artifact_is_404_like_a_refused_one(client, enroll):
    _, token = enroll()

    assert refused(download(client, "0" * 64, token), "0" * 64)


def test_a_pending_version_is_not_downloadable(client, enroll, upload):
    _, token = enroll()
    sha256 = upload().sha256

    assert refused(download(client, sha256, token), sha256)


def test_a_malformed_digest_is_404(client, enroll):
    _, token = enroll()

    assert download(client, "../../etc/passwd", token).status_code == 404
