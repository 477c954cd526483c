"""Artifact downloads: device token required, approved versions only, zstd of the raw bytes."""

from __future__ import annotations

import pytest
import zstandard

pytestmark = pytest.mark.django_db


def download(client, sha256: str, token: str | None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.get(f"/api/v1/artifacts/{sha256}", **headers)


def test_an_approved_artifact_downloads_as_zstd_of_the_component(client, enroll, approved, hello):
    _, token = enroll()
    version = approved()

    answer = download(client, version.sha256, token)

    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/zstd"
    assert answer["X-Artifact-Size"] == str(len(hello.component))
    assert int(answer["Content-Length"]) == version.compressed_size
    body = b"".join(answer.streaming_content)
    assert zstandard.ZstdDecompressor().decompress(body) == hello.component


def test_a_download_without_a_token_is_401(client, approved):
    answer = download(client, approved().sha256, None)

    assert answer.status_code == 401


def test_a_download_with_an_unknown_token_is_401(client, approved):
    answer = download(client, approved().sha256, "stolen?")

    assert answer.status_code == 401
    assert "unknown device token" in answer.json()["error"]


def test_an_unknown_artifact_is_404(client, enroll):
    _, token = enroll()

    answer = download(client, "0" * 64, token)

    assert (answer.status_code, answer.json()) == (
        404,
        {"error": f"no approved artifact {'0' * 64}"},
    )


def test_a_pending_version_is_not_downloadable(client, enroll, upload):
    _, token = enroll()

    assert download(client, upload().sha256, token).status_code == 404


def test_a_malformed_digest_is_404(client, enroll):
    _, token = enroll()

    assert download(client, "../../etc/passwd", token).status_code == 404
